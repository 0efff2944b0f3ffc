"""Misconfiguration is a BadStoreConfiguration naming the option, never a crash (issue 11,
item 2).

glance_store's ``multi_backend.create_multi_stores`` calls ``store.configure(re_raise_bsc=
False)`` and catches only ``BadStoreConfiguration`` (glance_store/driver.py): any other
exception stops glance-api, with every other backend. Each bad value below goes through
``create_multi_stores`` from a glance-api.conf file (oslo.config checks ranges and choices when
a value is read, so only a file reaches the store with them), next to a ``file`` backend that
must keep working.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from glance_store import capabilities, exceptions, location
from glance_store import multi_backend as multi_api
from oslo_config import cfg
from oslo_utils import units

from datera_glance.simulator import Simulator
from datera_glance.store import Store
from tests.plugins.store import Overrides, close_clients, datera_options


def write_conf(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    return path


def start_stores(
    sim: Simulator, tmp_path: Path, lock_path: Any = "", **datera: Any
) -> tuple[cfg.ConfigOpts, Any, Any]:
    """glance-api's start with ``bad:datera`` and ``fs:file``: (conf, datera store, file store)."""
    options = {**datera_options(sim, ""), **datera}
    options = {k: ("" if v is None else v) for k, v in options.items()}
    locks = str(tmp_path / "locks") if lock_path == "" else lock_path
    conf_file = write_conf(
        tmp_path / "glance-api.conf",
        {
            "DEFAULT": {"enabled_backends": "bad:datera, fs:file"},
            "glance_store": {"default_backend": "fs"},
            "oslo_concurrency": {"lock_path": locks},
            "fs": {"filesystem_store_datadir": str(tmp_path / "images")},
            "bad": options,
        },
    )
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.DictOpt("enabled_backends"))
    conf(["--config-file", str(conf_file)], project="glance")
    multi_api.register_store_opts(conf)
    # glance-api is still up with both backends (the file store registers two schemes)
    assert multi_api.create_multi_stores(conf) == 3
    backends = location.SCHEME_TO_CLS_BACKEND_MAP
    return conf, backends["datera"]["bad"]["store"], backends["file"]["fs"]["store"]


def assert_file_backend_works(store: Any) -> None:
    data = os.urandom(units.Mi + 7)
    image_id = str(uuid.uuid4())
    uri, size, md5, sha, _ = multi_api.store_add_to_backend_with_multihash(
        image_id, io.BytesIO(data), len(data), "sha256", store
    )
    assert (size, md5, sha) == (
        len(data),
        hashlib.md5(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    loc = location.get_location_from_uri_and_backend(uri, "fs", conf=store.conf)
    it, got = store.get(loc)
    assert b"".join(it) == data and got == len(data)


def assert_refused(store: Store, option: str, fix: str) -> None:
    assert isinstance(store, Store)
    assert not store.is_capable(capabilities.BitMasks.WRITE_ACCESS)
    with pytest.raises(exceptions.BadStoreConfiguration) as info:
        store.configure_add()
    message = str(info.value)
    assert option in message and fix in message, message


BAD_VALUES = [
    # (option, value, words of the fix the message must carry)
    ("datera_tenant_id", "my tenant", "letters, digits"),
    ("datera_tenant_id", "/root/bad!name", "letters, digits"),
    ("datera_tenant_id", "/root/bad$name", "'$$'"),  # oslo.config substitutes $name
    ("datera_tenant_id", "/root//glance", "letters, digits"),
    ("datera_san_port", 0, "from 1 to 65535"),
    ("datera_san_port", 70000, "from 1 to 65535"),
    ("datera_san_ip", "http://127.0.0.1", "management address alone"),
    ("datera_san_ip", "127.0.0.1:7718", "management address alone"),
    ("datera_san_ip", "10.0.0.300", "management address alone"),
    ("datera_san_ip", "edf host", "management address alone"),
    ("datera_replica_count", 0, "from 1 to 5"),
    ("datera_replica_count", 6, "from 1 to 5"),
    ("datera_io_buffer_size", 1000, "from 4096 to 67108864"),
    ("datera_io_buffer_size", 8191, "use 8192 or another multiple of 4096"),
    ("datera_io_buffer_size", 4 * units.Mi + 512, "multiple of 4096"),
    ("datera_io_buffer_size", 128 * units.Mi, "from 4096 to 67108864"),
    ("datera_io_depth", 0, "from 1 to 64"),
    ("datera_placement_mode", "fast", "one of hybrid, single_flash, all_flash"),
    ("datera_api_version", "3.0", "one of auto, 2.2, 2.1"),
    ("datera_connector", "fc", "one of iscsi, local"),
    ("datera_request_timeout", 0, "at least 1"),
]


@pytest.mark.parametrize(("option", "value", "fix"), BAD_VALUES)
def test_bad_value_is_refused_and_the_other_backend_works(
    simulator: Simulator,
    global_conf: Overrides,
    tmp_path: Path,
    option: str,
    value: Any,
    fix: str,
) -> None:
    _conf, datera, fs = start_stores(simulator, tmp_path, **{option: value})
    try:
        assert_refused(datera, option, fix)
        assert_file_backend_works(fs)
    finally:
        close_clients([datera])


@pytest.mark.parametrize("kind", ["missing", "directory", "not a certificate"])
def test_unusable_ca_file_is_refused(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path, kind: str
) -> None:
    """requests would raise a bare OSError at the first request (not a glance error)."""
    path = tmp_path / "ca.pem"
    if kind == "directory":
        path.mkdir()
    elif kind == "not a certificate":
        path.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    _conf, datera, fs = start_stores(
        simulator, tmp_path, datera_ssl=True, datera_ssl_ca_file=str(path)
    )
    try:
        assert_refused(datera, "datera_ssl_ca_file", "readable PEM CA bundle")
        assert_file_backend_works(fs)
    finally:
        close_clients([datera])


@pytest.mark.parametrize(
    "kind", ["unset", "a file", "under a file", "world-writable", "group-writable"]
)
def test_unusable_lock_path_is_refused(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path, kind: str
) -> None:
    """The attach records under lock_path drive privileged calls: no lock_path (the old
    fallback was a predictable /tmp directory), or one others (its group included: 0770 was
    accepted before) can write, is refused."""
    path = tmp_path / "locks"
    if kind == "a file":
        path.write_text("")
    elif kind == "under a file":
        path.write_text("")
        path = path / "sub"
    elif kind == "world-writable":
        path.mkdir()
        path.chmod(0o777)
    elif kind == "group-writable":
        path.mkdir()
        path.chmod(0o770)
    lock_path = None if kind == "unset" else str(path)
    _conf, datera, fs = start_stores(simulator, tmp_path, lock_path=lock_path)
    try:
        fix = "directory only the glance user can write" if kind == "unset" else "not writable"
        assert_refused(datera, "lock_path", fix)
        assert_file_backend_works(fs)
    finally:
        close_clients([datera])


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({}, "datera_chap_key is not set"),
        ({"datera_chap_key": "short-key-123"}, "shorter than 16 characters"),
        ({"datera_chap_key": "the-cluster-password"}, "is the cluster password"),
        ({"datera_chap_key": "abcabcabcabcabcabcabc"}, "fewer than 10 different characters"),
    ],
    ids=["unset", "short", "cluster-password", "pattern"],
)
def test_chap_needs_a_key_of_its_own(
    simulator: Simulator,
    global_conf: Overrides,
    tmp_path: Path,
    options: dict[str, str],
    fix: str,
) -> None:
    """CHAP secrets were derived from the cluster password and the user name EDF shows (and
    iSCSI sends in clear) carried 8 hex digits of that HMAC: a weak password fell offline.
    They come from ``datera_chap_key`` now, a random key of its own (attach/chap.py)."""
    _conf, datera, fs = start_stores(
        simulator,
        tmp_path,
        datera_connector="iscsi",
        datera_use_chap=True,
        datera_san_password="the-cluster-password",
        **options,
    )
    try:
        assert_refused(datera, "datera_chap_key", fix)
        assert_file_backend_works(fs)
    finally:
        close_clients([datera])


def test_a_private_lock_path_is_made_when_missing(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path
) -> None:
    _conf, datera, _fs = start_stores(simulator, tmp_path, lock_path=str(tmp_path / "new"))
    try:
        assert datera.is_capable(capabilities.BitMasks.WRITE_ACCESS)
        assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    finally:
        close_clients([datera])


def test_good_values_are_accepted(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path
) -> None:
    """The checks refuse only what is wrong: names, IPv6, short tenants, edge values."""
    for san_ip in ("127.0.0.1", "localhost", "::1", "edf-1.example.com"):
        _conf, datera, _fs = start_stores(
            simulator,
            tmp_path,
            datera_san_ip=san_ip,
            datera_tenant_id="glance.images_1",
            datera_replica_count=5,
            datera_io_buffer_size=64 * units.Mi,
            datera_san_port=65535,
        )
        try:
            assert datera.is_capable(capabilities.BitMasks.WRITE_ACCESS), san_ip
            assert datera.settings.tenant == "/root/glance.images_1"
        finally:
            close_clients([datera])


def test_options_set_in_code_are_checked_too(
    simulator: Simulator, global_conf: Overrides, tmp_path: Path
) -> None:
    """The same checks when the options come from overrides rather than a file."""
    conf = cfg.CONF
    global_conf.config(enabled_backends={"bad": "datera"})
    multi_api.register_store_opts(conf)
    options = datera_options(simulator, "", datera_tenant_id="a b", datera_io_buffer_size=4097)
    for name, value in options.items():
        global_conf.config(group="bad", **{name: value})
    assert multi_api.create_multi_stores(conf) == 1
    store = multi_api.get_store_from_store_identifier("bad")
    assert_refused(store, "datera_tenant_id", "letters, digits")
