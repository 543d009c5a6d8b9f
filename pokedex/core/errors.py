"""The one exception type for mistakes a user can fix (bad file, missing key, impossible config)."""


class PokedexError(Exception):
    """Raised with one sentence naming the file or key and the fix; stages print it without a traceback."""
