"""deploy.nginx: the generated configuration passes Debian's ``nginx -t``; bad addresses are one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.nginx import COOKIE, render
from tests.helpers import run_main, skip_unless_available

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.mark.parametrize("count", [2, 3])
def test_the_configuration_is_valid_nginx_and_sticky_by_cookie(tmp_path, count):
    skip_unless_available(Path(NGINX).exists(), "Debian's nginx", "apt-get install nginx (.ci/run does)")
    replicas = [f"127.0.0.1:{18500 + i}" for i in range(count)]
    config = tmp_path / "nginx.conf"
    config.write_text(render(replicas, "127.0.0.1:18080", str(tmp_path)))
    checked = subprocess.run(
        [NGINX, "-t", "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    text = config.read_text()
    assert f"$cookie_{COOKIE}" in text and "proxy_set_header Upgrade $http_upgrade" in text
    assert all(f"upstream replica{i} " in text for i in range(count))
    assert text.count("backup;") == count * (count - 1)  # every replica backs up every other


def test_bad_replica_lists_are_refused_in_one_line():
    with pytest.raises(ValueError, match="two or more"):
        render(["127.0.0.1:8501"], "127.0.0.1:8080")
    with pytest.raises(ValueError, match="host:port"):
        render(["127.0.0.1:8501", "x; include /etc/passwd"], "127.0.0.1:8080")
    result = run_main("deploy.nginx", "--replica", "127.0.0.1:8501")
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
