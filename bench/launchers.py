"""Checks that run before a sweep starts: is the launcher known, installed, and able to run?

Hydra's launcher plugins (joblib, submitit_local/submitit_slurm, ray) and the presets in
conf/hydra/launcher/ run the jobs. A misspelt launcher, a SLURM preset on a machine without
SLURM, or a Ray address that does not answer would otherwise fail after the sweep has started
(or hang); `check_launcher` turns each into one clear error naming the setting.
"""

from __future__ import annotations

import shutil
import socket
from urllib.parse import urlparse

from bench.paths import CONF_DIR
from bench.registry import UnknownNameError, unknown_name_message

__all__ = ["LauncherError", "check_launcher", "launcher_names"]

# Plugin launchers and the package that provides each (installed by the `cluster` extra).
PLUGIN_PACKAGES = {
    "joblib": "hydra-joblib-launcher",
    "submitit_local": "hydra-submitit-launcher",
    "submitit_slurm": "hydra-submitit-launcher",
    "ray": "hydra-ray-launcher",
    "ray_aws": "hydra-ray-launcher",
}
LAUNCHER_KEYS = ("hydra/launcher", "experiment")  # overrides that decide the launcher
RAY_DEFAULT_PORT = 10001  # the Ray client server's port (ray://host)


class LauncherError(ValueError):
    """The chosen launcher cannot run here; the message names the setting."""


def launcher_names() -> tuple[list[str], list[str]]:
    """(usable names, names whose plugin is not installed)."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers the installed plugins' launcher configs
    registered = ConfigStore.instance().repo.get("hydra", {}).get("launcher", {})
    installed = {name.removesuffix(".yaml") for name in registered}
    presets = {path.stem for path in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")}
    missing = set(PLUGIN_PACKAGES) - installed
    return sorted(installed | presets), sorted(missing)


def check_launcher(argv: list[str]) -> None:
    """Raise LauncherError / UnknownNameError when the sweep's launcher cannot work here."""
    relevant = [
        a for a in argv if _key(a) in LAUNCHER_KEYS or _key(a).startswith("hydra.launcher.")
    ]
    chosen = next((a.partition("=")[2] for a in relevant if _key(a) == "hydra/launcher"), None)
    if chosen is not None:
        usable, missing = launcher_names()
        if chosen in missing:
            raise LauncherError(
                f"hydra/launcher={chosen} needs the {PLUGIN_PACKAGES[chosen]} plugin: install the "
                "cluster extra (./scripts/setup.sh cluster, or pip install 'tabllm-bench[cluster]')"
            )
        if chosen not in usable:
            raise UnknownNameError(
                unknown_name_message("launcher", chosen, usable + missing, key="hydra/launcher")
            )
    # A sweep over experiments (or launchers) has no single launcher to compose: names only.
    if not relevant or any("," in a.partition("=")[2] for a in relevant):
        return
    launcher = _composed_launcher(relevant)
    target = str(launcher.get("_target_", ""))
    name = chosen or "(the experiment's launcher)"
    if target.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise LauncherError(
            f"hydra/launcher={name} submits jobs with SLURM's sbatch, which is not on PATH here. "
            "Run bench-run on a SLURM login node, or try the sweep locally with "
            "hydra/launcher=local_processes (submitit's local executor)."
        )
    if target.endswith("RayLauncher"):
        address = _ray_address(launcher)
        if chosen == "ray_cluster" and not address:
            raise LauncherError(
                "hydra/launcher=ray_cluster needs the cluster's address: set "
                "hydra.launcher.ray.init.address=ray://HEAD:10001 or the RAY_ADDRESS variable "
                "(hydra/launcher=ray_local starts a local cluster instead)"
            )
        if address and address != "auto":
            _probe(address)


def _key(arg: str) -> str:
    return arg.partition("=")[0].lstrip("+~")


def _composed_launcher(overrides: list[str]) -> dict:
    """hydra.launcher as bench-run would compose it (only launcher-related overrides applied)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from bench.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    address = OmegaConf.select(launcher, "ray.init.address", default=None)  # resolves oc.env
    plain = OmegaConf.to_container(launcher, resolve=False)
    if isinstance(plain.get("ray"), dict):
        plain["ray"].setdefault("init", {})["address"] = address
    return plain


def _ray_address(launcher: dict) -> str | None:
    return ((launcher.get("ray") or {}).get("init") or {}).get("address")


def _probe(address: str) -> None:
    """Connect to a Ray address (ray://host:port or host:port) once, with a short timeout."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = parsed.hostname, parsed.port or RAY_DEFAULT_PORT
    if not host:
        raise LauncherError(
            f"hydra.launcher.ray.init.address={address} is not an address (ray://host:port)"
        )
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        raise LauncherError(
            f"hydra.launcher.ray.init.address={address}: nothing answers at {host}:{port} "
            f"({error}). Is the Ray cluster up (ray status), and is the address right?"
        ) from error
