"""What a child process of the server keeps of its environment: an allow-list.

The server's environment holds secrets (team tokens, every model's provider key, the store's
connection string). A child gets what a Python process, torch and an accelerator need, and
nothing else; a runner is then given its own secrets explicitly (see ``pool/local.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

CHILD_ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HF_HOME", "XDG_CACHE_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
})
CHILD_ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "NVIDIA_", "ROCR_", "HIP_",
                      "TORCH_", "PYTORCH_")


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed part of ``parent``: no secret of the server's is in it."""
    return {k: v for k, v in parent.items()
            if k in CHILD_ENV_NAMES or k.startswith(CHILD_ENV_PREFIXES)}
