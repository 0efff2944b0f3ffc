"""The option set is an interface with operators' config files: pin it."""

from __future__ import annotations

import pathlib

import pytest
from oslo_config import cfg

from datera_glance import options

EXPECTED = {
    # the upstream README's eight
    "datera_san_ip": None,
    "datera_san_login": None,
    "datera_san_password": None,
    "datera_san_port": 7718,
    "datera_tenant_id": "/root",
    "datera_replica_count": 3,
    "datera_placement_mode": "hybrid",
    "datera_chunk_size": 1024**3,
    # added by this driver
    "datera_ssl": None,
    "datera_ssl_verify": True,
    "datera_ssl_ca_file": None,
    "datera_api_version": "auto",
    "datera_connector": "iscsi",
    "datera_initiator_name": None,
    "datera_use_chap": False,
    "datera_chap_key": None,
    "datera_use_multipath": False,
    "datera_default_image_size": 1,
    "datera_io_buffer_size": 4 * 1024**2,
    "datera_io_depth": 4,
    "datera_skip_zero_blocks": False,
    "datera_request_timeout": 60.0,
    "datera_retry_deadline": 120.0,
    "datera_rootwrap_config": "/etc/glance/rootwrap.conf",
    "datera_attach_linger": 30.0,
}


def test_option_names_and_defaults_are_pinned() -> None:
    opts = {opt.name: opt.default for opt in options.get_opts()}
    assert opts == EXPECTED


def test_list_opts_publishes_every_option_once() -> None:
    [(group, opts)] = options.list_opts()
    assert group == "glance_store"
    assert sorted(o.name for o in opts) == sorted(EXPECTED)


def test_secrets_are_secret_and_every_option_has_help() -> None:
    by_name = {o.name: o for o in options.get_opts()}
    secret = [o.name for o in options.get_opts() if o.secret]
    assert secret == ["datera_san_password", "datera_chap_key"]
    for opt in by_name.values():
        assert opt.help and len(opt.help.strip()) > 20, opt.name


def test_choices() -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(options.get_opts(), group="g")
    conf([])
    for name, good, bad in [
        ("datera_placement_mode", "all_flash", "ssd"),
        ("datera_api_version", "2.1", "2.0"),
        ("datera_connector", "local", "nvme"),
    ]:
        conf.set_override(name, good, group="g")
        assert getattr(conf.g, name) == good
        with pytest.raises(ValueError):
            conf.set_override(name, bad, group="g")


def test_upstream_rootwrap_option_name_still_works(tmp_path: pathlib.Path) -> None:
    ini = tmp_path / "glance-api.conf"
    ini.write_text("[g]\ndatera_glance_rootwrap_config = /etc/x/rootwrap.conf\n")
    conf = cfg.ConfigOpts()
    conf.register_opts(options.get_opts(), group="g")
    conf(["--config-file", str(ini)])
    assert conf.g.datera_rootwrap_config == "/etc/x/rootwrap.conf"


def test_chunk_size_help_says_it_is_the_growth_step() -> None:
    by_name = {o.name: o for o in options.get_opts()}
    text = by_name["datera_chunk_size"].help or ""
    assert "Growth step" in text and "no longer decides" in text
