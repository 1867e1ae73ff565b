"""The local Hugging Face cache that ``timm:`` and ``hf:`` weights come from, and how to fill it offline.

The cache folder and offline mode are read from the environment when asked (``HF_HUB_CACHE``, else
``HF_HOME``/hub, else ``~/.cache/huggingface/hub``; ``HF_HUB_OFFLINE=1``), so a setting made after import holds.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE = "~/.cache/huggingface/hub"
"""Where ``hf download`` puts files on the machine with internet, unless told otherwise."""
GATED = {
    "MahmoodLab/UNI": "gated: log in at huggingface.co, accept the terms on https://huggingface.co/MahmoodLab/UNI "
    "(an institutional email is asked for) and run `hf auth login` before downloading",
    "MahmoodLab/UNI2-h": "gated: accept the terms on https://huggingface.co/MahmoodLab/UNI2-h and run "
    "`hf auth login` before downloading",
    "MahmoodLab/CONCH": "gated: accept the terms on https://huggingface.co/MahmoodLab/CONCH and run "
    "`hf auth login` before downloading",
    "prov-gigapath/prov-gigapath": "gated: accept the terms on https://huggingface.co/prov-gigapath/prov-gigapath "
    "and run `hf auth login` before downloading",
    "paige-ai/Virchow": "gated: accept the terms on https://huggingface.co/paige-ai/Virchow and run "
    "`hf auth login` before downloading",
    "paige-ai/Virchow2": "gated: accept the terms on https://huggingface.co/paige-ai/Virchow2 and run "
    "`hf auth login` before downloading",
}
"""Repositories known to need an access request; any other gated one answers ``hf download`` with 401/403."""


def hub_cache() -> Path:
    """The Hugging Face hub cache this process reads."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(DEFAULT_CACHE).expanduser()


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def cached_file(repo: str, filenames: list[str]) -> Path | None:
    """The first of ``filenames`` of ``repo`` that is in the local cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, cache_dir=hub_cache())
        if isinstance(found, str):
            return Path(found)
    return None


def download(repo: str, filenames: list[str]) -> Path | None:
    """The first of ``filenames`` that downloads into the cache; None offline or when none does."""
    if offline():
        return None
    from huggingface_hub import hf_hub_download

    for filename in filenames:
        try:
            return Path(hf_hub_download(repo, filename, cache_dir=hub_cache()))
        except Exception:  # no network, no such file, gated: the caller says how to fetch it by hand
            continue
    return None


def cache_folder(repo: str) -> str:
    """The cache's folder for ``repo`` (``models--<org>--<name>``)."""
    return "models--" + repo.replace("/", "--")


def fetch_hint(repo: str, files: str = "") -> str:
    """How to bring ``repo`` here from a machine with internet: the command, what to copy and where."""
    command = f"hf download {repo}{' ' + files if files else ''}"
    gated = f" ({GATED[repo]})" if repo in GATED else ""
    return (
        f"on a machine with internet run `{command}`{gated}, then copy {DEFAULT_CACHE}/{cache_folder(repo)} "
        f"there into {hub_cache()} here (or set HF_HUB_CACHE to the folder that holds the copy)"
    )
