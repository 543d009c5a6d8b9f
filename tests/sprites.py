"""Sprite fixtures with PokeAPI/sprites' layout, drawn here: animated GIFs, static PNG folders, an npm package."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw

GEN5 = "versions/generation-v/black-white/animated"
VIEWS = [GEN5, f"{GEN5}/back", f"{GEN5}/shiny", f"{GEN5}/back/shiny"]
ARTWORK = ["other/official-artwork", "other/home"]


def sprite_frame(dex: int, view: int, t: int, size: int = 40) -> Image.Image:
    """A creature with a dark outline on a transparent field; colour by species and view, pose by t."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour = ((dex * 70) % 256, (view * 60 + 40) % 256, (dex * 30 + view * 90) % 256, 255)
    x = 6 + t * 3
    d.ellipse([x, 8, x + 20, 8 + 14 + dex + 2 * t], fill=colour, outline=(10, 10, 10, 255), width=2)  # t: moves, stretches
    d.rectangle([x + 5, 12, x + 9, 16], fill=(250, 250, 250, 255))  # white inside the outline stays
    return img


def write_gif(path: Path, frames: list[Image.Image]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0, disposal=2)


def sprite_tree(root: Path, species=(1, 2, 3), layout: str = "sprites/pokemon") -> Path:
    """root/<layout>/<four Gen V views>: an animation of 5 poses, two of them shown again later, per species
    and view; plus what the real package holds besides species: forms, alternate-form ids, substitute.gif."""
    base = root / layout
    for v, view in enumerate(VIEWS):
        for dex in species:
            write_gif(base / view / f"{dex}.gif", [sprite_frame(dex, v, t) for t in (0, 1, 0, 2, 3, 2, 4)])
        write_gif(base / view / "10001.gif", [sprite_frame(9, v, t) for t in range(3)])
        write_gif(base / view / "substitute.gif", [sprite_frame(8, v, 0)])
    write_gif(base / GEN5 / "2-alola.gif", [sprite_frame(2, 7, t) for t in range(4)])  # a form of species 2
    write_gif(base / f"{GEN5}/female" / "1.gif", [sprite_frame(1, 9, t) for t in range(4)])
    (base / GEN5 / "4.txt").write_text("not a sprite")
    (base / GEN5 / "3-broken.gif").write_bytes(b"GIF89a\x10\x00\x10\x00 truncated")
    write_gif(base / f"{GEN5}/back" / "3-ghost.gif", [Image.new("RGBA", (30, 30), (0, 0, 0, 0))] * 2)
    return root


def npm_pack(folder: Path, out: Path) -> tuple[Path, str]:
    """`npm pack` of a sprite tree (offline: a folder, not a registry name): the tarball and its integrity."""
    (folder / "package.json").write_text(json.dumps({"name": "tiny-sprites", "version": "1.0.0", "license": "ISC"}))
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "pack", str(folder), "--json", "--pack-destination", str(out)], cwd=out,
                          capture_output=True, text=True, env=dict(os.environ, npm_config_cache=str(out / "npm")))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)[0]
    return out / info["filename"], info["integrity"]
