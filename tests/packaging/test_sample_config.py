"""The committed sample config is what oslo-config-generator makes of ``list_opts()``."""

from __future__ import annotations

from pathlib import Path

from oslo_config import cfg

from datera_glance import options
from tools import genconfig


def test_committed_sample_matches_the_generator() -> None:
    """Fails when an option, its default or its help changed without `tox -e genconfig`."""
    sample = genconfig.SAMPLE.read_text()
    assert genconfig.splice(sample, genconfig.render_group()) == sample, (
        "etc/glance/glance-api.conf.sample is stale: run `tox -e genconfig` (./dev genconfig)"
    )


def test_check_reports_a_stale_sample(tmp_path: Path) -> None:
    stale = tmp_path / "glance-api.conf.sample"
    text = genconfig.SAMPLE.read_text().replace("#datera_io_depth = 4\n", "#datera_io_depth = 2\n")
    assert text != genconfig.SAMPLE.read_text()
    stale.write_text(text)
    assert genconfig.main(["--check", "--sample", str(stale)]) == 1
    assert stale.read_text() == text, "--check must not write"
    assert genconfig.main(["--sample", str(stale)]) == 0
    assert stale.read_text() == genconfig.SAMPLE.read_text()


def test_every_option_is_in_the_datera_section_once() -> None:
    block = genconfig.render_group()
    for opt in options.get_opts():
        assert block.count(f"\n#{opt.name} = ") == 1, opt.name
    assert "[datera]/datera_glance_rootwrap_config" in block


def test_sample_loads_with_the_store_options(tmp_path: Path) -> None:
    """The sample is a valid glance-api.conf for the options it shows (oslo.config parses it)."""
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.DictOpt("enabled_backends"))
    conf.register_opts(options.get_opts(), group="datera")
    conf.register_opt(cfg.StrOpt("store_description"), group="datera")
    conf(["--config-file", str(genconfig.SAMPLE)], default_config_files=[])
    assert conf.enabled_backends == {"datera": "datera", "file": "file"}
    assert conf.datera.datera_san_ip == "172.28.94.11"
    assert conf.datera.datera_san_port == options.DEFAULT_PORT
    assert conf.datera.datera_io_depth == options.DEFAULT_IO_DEPTH
