"""Ray, imported only when ``--executor ray`` is asked for; without it, one line on how to get it."""

from __future__ import annotations

from types import ModuleType

from gapmeter.errors import ConfigError

INSTALL_HINT = (
    "--executor ray needs Ray, which is not installed: pip install 'gapmeter[ray]' "
    "(in a checkout: pip install -e '.[ray]')"
)

#: The namespace of gapmeter's named actors (replicas, the shared rate limiter).
NAMESPACE = "gapmeter"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: a new single-machine cluster in this process).
    Returns True when this call connected (and so the caller disconnects at the end)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
    except ConnectionError as err:
        raise ConfigError(f"--ray_address {address}: no Ray cluster there ({err})") from None
    return True
