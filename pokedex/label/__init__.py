"""Your pictures, labelled: `pokedex suggest` picks the pictures worth labelling, `pokedex label` files them."""
