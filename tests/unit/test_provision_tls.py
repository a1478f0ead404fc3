"""provision's TLS parts (docs/tls.md): the nginx site, haproxy.cfg and certbot's deploy hook as
rendered for each provision_tls mode, and the defaults and argument specs agreeing. The lab test
(tests/lab/test_tls.py) serves them for real; these catch a template slip without a lab."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.opsbook.webstack.plugins.module_utils.slots import lb_settings

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "provision"
TLS_DIR = "/etc/opsbook/tls/journal"


def render(name: str, **overrides) -> str:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["regex_escape"] = re.escape
    variables = {
        **defaults,
        "ansible_managed": "test",
        "app_name": "journal",
        "app_server_name": "journal.example.org",
        "__provision_tls_dir": TLS_DIR,
        "__provision_tls_lineage": "/etc/letsencrypt/live/journal",
        "__provision_tls_webroot": "/var/lib/opsbook/acme-webroot",
        "provision_lb_backends": [{"name": "app1", "host": "app1", "port": 8000, "active": True}],
        **overrides,
    }
    # The load balancer settings as the role's vars/main.yml has them (opsbook.webstack.lb_settings).
    variables["__provision_lb"] = lb_settings(variables)
    return env.from_string((ROLE / "templates" / name).read_text()).render(**variables)


def test_none_renders_no_tls_at_all():
    for name in ("nginx-site.conf.j2", "haproxy.cfg.j2"):
        text = render(name)
        assert "ssl" not in text and "acme" not in text and "443" not in text, name


@pytest.mark.parametrize("mode", ["selfsigned", "acme"])
def test_nginx_listens_with_tls_on_both_ports(mode):
    text = render("nginx-site.conf.j2", provision_tls=mode)
    assert "listen 80 default_server;" in text
    assert "listen 443 ssl default_server;" in text
    assert f"ssl_certificate {TLS_DIR}/fullchain.pem;" in text
    assert f"ssl_certificate_key {TLS_DIR}/privkey.pem;" in text
    assert ("location ^~ /.well-known/acme-challenge/" in text) == (mode == "acme")
    assert "return 301" not in text  # no redirect unless asked


def test_nginx_redirect_spares_the_challenge_and_names_a_non_default_port():
    text = render("nginx-site.conf.j2", provision_tls="acme", provision_tls_redirect=True)
    assert "return 301 https://$host$request_uri;" in text
    assert 'if ($uri ~ "^/\\.well-known/acme-challenge/")' in text
    # The redirect is decided after the maintenance page: a page that is on still answers 503.
    assert text.index("return 503;") < text.index("return 301")
    text = render(
        "nginx-site.conf.j2", provision_tls="selfsigned", provision_tls_redirect=True, provision_tls_port=8443
    )
    assert "return 301 https://$host:8443$request_uri;" in text


def test_haproxy_binds_the_combined_pem_and_routes_the_challenge_to_certbot():
    text = render("haproxy.cfg.j2", provision_tls="acme", provision_tls_redirect=True)
    assert f"bind *:443 ssl crt {TLS_DIR}/combined.pem alpn http/1.1" in text
    challenge = "!{ path_beg /.well-known/acme-challenge/ }"
    assert f"http-request redirect scheme https code 301 if !{{ ssl_fc }} {challenge}" in text
    assert "use_backend journal_acme if opsbook_acme_challenge" in text
    assert "server certbot 127.0.0.1:8402" in text
    # use_backend after every http-request rule (HAProxy warns otherwise), before the default.
    assert text.rindex("http-request") < text.index("use_backend") < text.index("default_backend")
    selfsigned = render("haproxy.cfg.j2", provision_tls="selfsigned")
    assert "bind *:443 ssl" in selfsigned and "acme" not in selfsigned and "redirect" not in selfsigned


@pytest.mark.parametrize("software,check,service", [
    ("nginx", "nginx -t -q", "nginx.service"),
    ("haproxy", "haproxy -c -q -f /etc/haproxy/haproxy.cfg", "haproxy.service"),
])  # fmt: skip
def test_deploy_hook_installs_by_rename_checks_then_reloads(software, check, service, tmp_path):
    text = render("tls-deploy-hook.sh.j2", provision_lb_software=software)
    hook = tmp_path / "hook"
    hook.write_text(text)
    assert subprocess.run(["sh", "-n", hook]).returncode == 0
    lines = text.splitlines()
    assert "umask 077" in lines
    assert 'mv -f "${dir}/.combined.pem.new" "${dir}/combined.pem"' in lines
    assert lines.index(check) < lines.index('    systemctl reload "${service}"')
    assert f"service={service}" in lines


def test_every_tls_default_is_declared_with_the_same_default():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    names = [n for n in defaults if n.startswith("provision_tls")]
    assert len(names) == 10
    for name in names:
        assert specs[name]["default"] == defaults[name], name
    assert specs["provision_tls"]["choices"] == ["none", "selfsigned", "acme"]
