"""``proxygate forward-auth`` and ``proxygate gateway-config``: their mistakes, named plainly."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from proxygate.cli import main
from proxygate.gateways import GatewayError, GatewayOptions
from proxygate.gateways.nginx import NginxBuild, render_config
from support.binaries import require_binary


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _config_argv(directory: Path, *extra: str) -> list[str]:
    return ["gateway-config", "nginx", "--listen", "127.0.0.1:8080", "--auth-url",
            "http://127.0.0.1:9000/auth", "--upstream", "http://127.0.0.1:8000",
            "--dir", str(directory), *extra]


def test_forward_auth_without_users_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, ["forward-auth", "--gateway", "nginx"])
    assert status == 2
    assert "--users FILE is required" in err


def test_forward_auth_with_a_bad_option_value_names_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "users"
    users.write_text("alice:$apr1$abcdefgh$abcdefghijklmnopqrstuv\n")
    monkeypatch.setenv("PROXYGATE_MAX_FAILURES", "many")
    status, _, err = _run(capsys, ["forward-auth", "--users", str(users)])
    assert status == 2
    assert "max_failures must be a whole number" in err


def test_gateway_config_names_the_gateways_it_knows(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = _config_argv(tmp_path)
    argv[1] = "haproxy"
    status, _, err = _run(capsys, argv)
    assert status == 2
    assert "GATEWAY must be one of: nginx" in err


@pytest.mark.parametrize("listen", ["8080", "localhost:", ":80", "127.0.0.1:99999", "a b:80"])
def test_gateway_config_refuses_a_bad_listen_address(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, listen: str) -> None:
    argv = _config_argv(tmp_path)
    argv[argv.index("--listen") + 1] = listen
    status, _, err = _run(capsys, argv)
    assert status == 2
    assert "--listen" in err or "listen host" in err


@pytest.mark.parametrize("url", ["127.0.0.1:9000", "ftp://host/", "http://u:p@host/"])
def test_gateway_config_refuses_a_bad_auth_url(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str) -> None:
    argv = _config_argv(tmp_path)
    argv[argv.index("--auth-url") + 1] = url
    status, _, err = _run(capsys, argv)
    assert status == 2
    assert "auth URL" in err
    assert "u:p" not in err or "credentials" in err


def test_gateway_config_without_nginx_on_path_says_how_to_install_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status, _, err = _run(capsys, _config_argv(tmp_path / "out"))
    assert status == 2
    assert "nginx is not on PATH" in err
    assert "nginx-light" in err


def _build(version: tuple[int, int, int], configure: str = "") -> NginxBuild:
    return NginxBuild("nginx", version, "configure arguments: --with-http_auth_request_module "
                      + configure)


def _options(tmp_path: Path, **changes: object) -> GatewayOptions:
    values: dict[str, object] = {
        "listen_host": "127.0.0.1", "listen_port": 8080,
        "auth_url": "http://127.0.0.1:9000/check", "upstream": "http://127.0.0.1:8000",
        "directory": tmp_path,
    }
    values.update(changes)
    return GatewayOptions(**values)  # type: ignore[arg-type]


def test_the_tunnel_is_written_only_for_nginx_1_31_built_with_it(tmp_path: Path) -> None:
    options = _options(tmp_path)
    assert "tunnel_pass" not in render_config(options, _build((1, 22, 1)))
    assert "tunnel_pass" in render_config(options, _build((1, 31, 3)))
    assert "tunnel_pass" not in render_config(
        options, _build((1, 31, 3), "--without-http_tunnel_module"))


def test_temp_directives_are_written_only_for_modules_the_build_has(tmp_path: Path) -> None:
    text = render_config(_options(tmp_path), _build((1, 22, 1), "--without-http_uwsgi_module"))
    assert "uwsgi_temp_path" not in text
    assert "fastcgi_temp_path" in text


def test_the_user_header_and_mode_reach_the_config(tmp_path: Path) -> None:
    text = render_config(_options(tmp_path, user_header="Remote-User", mode="origin"),
                         _build((1, 22, 1)))
    assert "proxy_set_header Remote-User $proxygate_user;" in text
    assert "$upstream_http_remote_user" in text
    assert 'proxy_set_header Authorization "";' in text
    assert "add_header WWW-Authenticate $proxygate_www_authenticate always;" in text


def test_several_service_instances_share_one_upstream_block(tmp_path: Path) -> None:
    text = render_config(_options(tmp_path, extra_auth_urls=("http://127.0.0.1:9001/check",)),
                         _build((1, 22, 1)))
    assert "server 127.0.0.1:9000;" in text
    assert "server 127.0.0.1:9001;" in text
    assert "proxy_pass http://proxygate_auth/check;" in text


def test_auth_urls_with_different_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="same path"):
        _options(tmp_path, extra_auth_urls=("http://127.0.0.1:9001/other",))


def test_gateway_config_prints_the_command_last(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    require_binary("nginx", install="apt-get install nginx-light")
    status, out, _ = _run(capsys, _config_argv(tmp_path))
    assert status == 0
    argv = shlex.split(out.strip().splitlines()[-1])
    assert argv[0] == "nginx"
    assert str(tmp_path / "nginx.conf") in argv


@pytest.mark.parametrize("name", ["with space", "semi;colon", "dollar$sign", "brace{"])
def test_a_directory_nginx_conf_could_not_name_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(GatewayError, match=r"nginx\.conf cannot hold"):
        render_config(_options(tmp_path / name), _build((1, 22, 1)))
