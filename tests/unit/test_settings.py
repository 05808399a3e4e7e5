"""Settings.from_env: defaults, production secrets, and rejected values."""

from __future__ import annotations

import base64
import re

import pytest

from app.settings import DEV_SECRET, ROOT, Settings, SettingsError

# Strong random values (production refuses development values, patterned keys and weak secrets)
KEY = "7mDCT4BvcFHbUBDa6DT7JcUJXTchZWtKlZTNF/358MY="
KEY_BYTES = base64.b64decode(KEY)
INDEX_KEY = "hzbBLnypubwnh4poX33KtBTtZDRfWYYKDCZ7V2EFA94="
SECRET = "JcpuSyGjLg7v--mkEVmHL7Epg7H3iDrBzhMADXtzYgw"
MP_SECRET, MINI_SECRET = "58c337fb4afaf2aac70a73cdc1d9e9a9", "5cd5b16b15325516e166d838b631acdc"
AES_KEY = "y0B3cGsXydwYwKu+gssYMBzD4bmmi8eb9fePVZCC0SQ"
PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgres://app:secret@db:5432/zuiduo",
    "ADMIN_TOKEN": "a-long-random-token",
    "BASE_URL": "https://zwfw.example.gov.cn",
    "SECRET_KEY": SECRET,
    "PII_KEYS": f"k1:{KEY}",
    "PII_INDEX_KEY": INDEX_KEY,
    "WECHAT_MP_APPID": "wx0000000000000001",
    "WECHAT_MP_SECRET": MP_SECRET,
    "WECHAT_MINI_APPID": "wx0000000000000002",
    "WECHAT_MINI_SECRET": MINI_SECRET,
    "WECHAT_MP_TOKEN": "prodcallbacktoken42",
    "WECHAT_MP_AES_KEY": AES_KEY,
    "SMS_GATEWAY_URL": "https://sms.example.gov.cn/send",
    "REALNAME_VERIFIER_URL": "https://idv.example.gov.cn/verify",
}
OTHER_KEY = "/akLVpjCp+oB6fL6Dw+vSTSVrKQvsCUp/S+y6YkB4iU="
OTHER_KEY_BYTES = base64.b64decode(OTHER_KEY)
REQUIRED = (
    "DATABASE_URL",
    "BASE_URL",
    "SECRET_KEY",
    "PII_KEYS",
    "PII_INDEX_KEY",
    "WECHAT_MP_APPID",
    "WECHAT_MP_SECRET",
    "WECHAT_MINI_APPID",
    "WECHAT_MINI_SECRET",
    "WECHAT_MP_TOKEN",
    "WECHAT_MP_AES_KEY",
)
BRIEF_SECRETS = ("DATABASE_URL", "BASE_URL")  # what production required at first (ADMIN_TOKEN is gone)


def names(message: str, name: str) -> bool:
    """True when the message names this variable (DATABASE_URL does not name BASE_URL)."""
    return re.search(rf"\b{name}\b", message) is not None


def test_defaults():
    s = Settings.from_env({})
    assert s.env == "development"
    assert s.database_url == f"sqlite://{ROOT / 'data' / 'zuiduo.sqlite3'}"
    assert s.db_backend == "sqlite"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.redis_url is None
    assert s.workers == 1
    assert (s.load_demo, s.auto_migrate) == (True, True)
    assert s.is_production is False
    assert s.guide_cache_seconds == 60


def test_base_url_comes_from_host_and_port():
    s = Settings.from_env({"HOST": "0.0.0.0", "PORT": "9000"})
    assert (s.host, s.port, s.base_url) == ("0.0.0.0", 9000, "http://0.0.0.0:9000")


def test_base_url_trailing_slash_is_removed():
    assert Settings.from_env({"BASE_URL": "https://zwfw.example.gov.cn/"}).base_url == "https://zwfw.example.gov.cn"


def test_reads_os_environ_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.delenv("BASE_URL", raising=False)
    monkeypatch.delenv("HOST", raising=False)
    s = Settings.from_env()
    assert (s.env, s.port, s.base_url) == ("test", 8123, "http://127.0.0.1:8123")


def production(**changes: str | None) -> dict[str, str]:
    """The complete production environment with some variables changed (None removes one)."""
    env = {**PRODUCTION, **changes}
    return {k: v for k, v in env.items() if v is not None}


def refused(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(env)
    return str(exc.value)


def test_production_without_secrets_names_every_missing_variable():
    message = refused({"APP_ENV": "production"})
    for name in REQUIRED:
        assert names(message, name), name


@pytest.mark.parametrize("missing", REQUIRED)
def test_production_names_exactly_the_missing_variable(missing):
    message = refused(production(**{missing: None}))
    assert names(message, missing)
    for other in set(REQUIRED) - {missing}:
        assert not names(message, other), other


def test_production_with_only_the_first_three_secrets_names_the_newer_ones():
    message = refused({"APP_ENV": "production", **{k: PRODUCTION[k] for k in BRIEF_SECRETS}})
    for name in set(REQUIRED) - set(BRIEF_SECRETS):
        assert names(message, name), name
    for name in BRIEF_SECRETS:
        assert not names(message, name), name


@pytest.mark.parametrize("name", REQUIRED)
def test_production_treats_empty_values_as_missing(name):
    assert names(refused(production(**{name: ""})), name)


def test_production_with_everything():
    s = Settings.from_env({**PRODUCTION, "APP_ENV": " Production "})
    assert s.is_production
    assert not hasattr(s, "admin_token")  # administration is a staff role now
    assert s.base_url == "https://zwfw.example.gov.cn"
    assert (s.load_demo, s.auto_migrate) == (False, False)
    assert s.db_backend == "postgres"
    assert s.secret_key == SECRET
    assert s.pii_keys == {"k1": KEY_BYTES}
    assert s.pii_active_kid == "k1"
    assert s.pii_index_key == base64.b64decode(INDEX_KEY)
    assert (s.wechat_mp_appid, s.wechat_mp_secret) == ("wx0000000000000001", MP_SECRET)
    assert (s.wechat_mini_appid, s.wechat_mini_secret) == ("wx0000000000000002", MINI_SECRET)
    assert (s.sms_sender, s.sms_gateway_url) == ("http", "https://sms.example.gov.cn/send")
    assert (s.realname_verifier, s.realname_verifier_url) == ("http", "https://idv.example.gov.cn/verify")
    assert s.jwt_issuer == "https://zwfw.example.gov.cn"


# ---------------------------------------------------------------- secrets and keys


@pytest.mark.parametrize("secret", ["short", SECRET[:31]])
def test_production_secret_key_needs_32_characters(secret):
    assert names(refused(production(SECRET_KEY=secret)), "SECRET_KEY")
    assert Settings.from_env(production(SECRET_KEY=SECRET[:32])).secret_key == SECRET[:32]


def test_a_short_secret_key_is_fine_in_development():
    assert Settings.from_env({"SECRET_KEY": "short"}).secret_key == "short"


def test_development_keys_are_derived_from_the_secret_key():
    default = Settings.from_env({})
    assert default.secret_key == Settings().secret_key
    assert list(default.pii_keys) == ["dev1"] and default.pii_active_kid == "dev1"
    assert all(len(key) == 32 for key in (*default.pii_keys.values(), default.pii_index_key))
    assert default.pii_keys["dev1"] != default.pii_index_key  # one key per purpose
    assert (default.pii_keys, default.pii_index_key) == (Settings().pii_keys, Settings().pii_index_key)
    other = Settings.from_env({"SECRET_KEY": "another development secret"})
    assert other.pii_keys["dev1"] != default.pii_keys["dev1"]
    assert other.pii_index_key != default.pii_index_key


def test_several_pii_keys_and_the_active_one():
    s = Settings.from_env(production(PII_KEYS=f"old:{KEY}, new:{OTHER_KEY}"))
    assert s.pii_keys == {"old": KEY_BYTES, "new": OTHER_KEY_BYTES}
    assert s.pii_active_kid == "new"  # the last key encrypts unless told otherwise
    s = Settings.from_env(production(PII_KEYS=f"old:{KEY},new:{OTHER_KEY}", PII_ACTIVE_KID="old"))
    assert s.pii_active_kid == "old"


@pytest.mark.parametrize("active", ["k2", "K1", "dev1", "k1 "])
def test_pii_active_kid_must_be_one_of_pii_keys(active):
    message = refused(production(PII_ACTIVE_KID=active))
    assert "PII_ACTIVE_KID" in message
    assert "PII_KEYS" in message


def test_pii_active_kid_must_name_a_development_key_too():
    assert "PII_ACTIVE_KID" in refused({"PII_ACTIVE_KID": "k9"})
    assert Settings.from_env({"PII_ACTIVE_KID": "dev1"}).pii_active_kid == "dev1"


@pytest.mark.parametrize(
    "value",
    [
        KEY,  # no key id
        f":{KEY}",  # empty key id
        "k1:",  # empty key
        f"k1:{KEY},k2",  # second item without a key
        f"k1={KEY}",  # wrong separator
    ],
    ids=["no-kid", "empty-kid", "empty-key", "second-item-bare", "equals-sign"],
)
def test_pii_keys_must_look_like_id_colon_key(value):
    message = refused(production(PII_KEYS=value))
    assert "PII_KEYS" in message
    assert "id:value" in message


B64_OF = {
    "16-bytes": base64.b64encode(bytes(16)).decode(),
    "31-bytes": base64.b64encode(bytes(31)).decode(),
    "33-bytes": base64.b64encode(bytes(33)).decode(),
    "64-bytes": base64.b64encode(bytes(64)).decode(),
}


@pytest.mark.parametrize("size", list(B64_OF))
def test_pii_keys_must_be_32_bytes(size):
    message = refused(production(PII_KEYS=f"k1:{B64_OF[size]}"))
    assert "PII_KEYS[k1]" in message
    assert "32 bytes" in message


@pytest.mark.parametrize(
    "value",
    ["not base64 at all!", KEY[:-1], "*" * 44, KEY.replace("+", "-").replace("/", "_") + "-_"],
    ids=["text", "bad-padding", "stars", "urlsafe-alphabet"],
)
def test_pii_keys_must_be_base64(value):
    message = refused(production(PII_KEYS=f"k1:{value}"))
    assert "PII_KEYS[k1]" in message


def test_a_bad_second_pii_key_is_named():
    message = refused(production(PII_KEYS=f"k1:{KEY},k2:{B64_OF['16-bytes']}"))
    assert "PII_KEYS[k2]" in message


@pytest.mark.parametrize("value", [B64_OF["16-bytes"], B64_OF["33-bytes"], "not base64!", KEY[:-2]])
def test_pii_index_key_must_be_32_base64_bytes(value):
    assert "PII_INDEX_KEY" in refused(production(PII_INDEX_KEY=value))


def test_pii_keys_are_checked_in_development_too():
    assert "PII_KEYS" in refused({"PII_KEYS": "k1:short"})
    assert "PII_INDEX_KEY" in refused({"PII_INDEX_KEY": "short"})
    s = Settings.from_env({"PII_KEYS": f"k1:{KEY}", "PII_INDEX_KEY": OTHER_KEY})
    assert (s.pii_keys, s.pii_active_kid, s.pii_index_key) == ({"k1": KEY_BYTES}, "k1", OTHER_KEY_BYTES)


# ---------------------------------------------------------------- SMS and real-name verification


def test_development_defaults_send_sms_to_the_console_and_verify_names_locally():
    s = Settings.from_env({})
    assert (s.sms_sender, s.realname_verifier) == ("console", "dev")
    assert (s.sms_gateway_url, s.realname_verifier_url) == (None, None)


def test_production_defaults_to_the_http_gateways_which_need_urls():
    message = refused(production(SMS_GATEWAY_URL=None))
    assert "SMS_SENDER=http requires SMS_GATEWAY_URL" in message
    message = refused(production(REALNAME_VERIFIER_URL=None))
    assert "REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL" in message


@pytest.mark.parametrize("value", ["console", "CONSOLE"])
def test_production_refuses_the_console_sms_sender(value):
    message = refused(production(SMS_SENDER=value))
    assert "SMS_SENDER=console" in message


@pytest.mark.parametrize("value", ["dev", "Dev"])
def test_production_refuses_the_dev_realname_verifier(value):
    message = refused(production(REALNAME_VERIFIER=value))
    assert "REALNAME_VERIFIER=dev" in message


@pytest.mark.parametrize("value", ["smtp", "aliyun", "none"])
def test_unknown_sms_sender(value):
    assert "SMS_SENDER must be console or http" in refused({"SMS_SENDER": value})
    assert "SMS_SENDER must be console or http" in refused(production(SMS_SENDER=value))


@pytest.mark.parametrize("value", ["police", "none", "mock"])
def test_unknown_realname_verifier(value):
    assert "REALNAME_VERIFIER must be dev or http" in refused({"REALNAME_VERIFIER": value})


def test_http_gateways_need_their_urls_in_development_too():
    assert "SMS_GATEWAY_URL" in refused({"SMS_SENDER": "http"})
    assert "REALNAME_VERIFIER_URL" in refused({"REALNAME_VERIFIER": "http"})
    s = Settings.from_env(
        {
            "SMS_SENDER": "HTTP",
            "SMS_GATEWAY_URL": "http://127.0.0.1:9000/sms",
            "SMS_GATEWAY_KEY": "k",
            "REALNAME_VERIFIER": "http",
            "REALNAME_VERIFIER_URL": "http://127.0.0.1:9001/idv",
        }
    )
    assert (s.sms_sender, s.sms_gateway_url, s.sms_gateway_key) == ("http", "http://127.0.0.1:9000/sms", "k")
    assert (s.realname_verifier, s.realname_verifier_url) == ("http", "http://127.0.0.1:9001/idv")


def test_production_accepts_explicit_http_gateways():
    s = Settings.from_env(production(SMS_SENDER="http", REALNAME_VERIFIER="http"))
    assert (s.sms_sender, s.realname_verifier) == ("http", "http")


# ---------------------------------------------------------------- tokens and WeChat


def test_token_settings():
    s = Settings.from_env({})
    assert (s.access_token_seconds, s.refresh_token_days) == (900, 30)
    assert s.jwt_issuer == s.base_url
    s = Settings.from_env(
        {"ACCESS_TOKEN_SECONDS": "60", "REFRESH_TOKEN_DAYS": "365", "JWT_ISSUER": "https://id.example.gov.cn/"}
    )
    assert (s.access_token_seconds, s.refresh_token_days, s.jwt_issuer) == (60, 365, "https://id.example.gov.cn")


@pytest.mark.parametrize(
    ("name", "value"),
    [("ACCESS_TOKEN_SECONDS", "59"), ("ACCESS_TOKEN_SECONDS", "3601"), ("REFRESH_TOKEN_DAYS", "0")],
)
def test_token_lifetimes_are_bounded(name, value):
    assert name in refused({name: value})


def test_partner_clients():
    s = Settings.from_env({"PARTNER_CLIENTS": "hall-kiosk:s3cret, bank:other"})
    assert s.partner_clients == {"hall-kiosk": "s3cret", "bank": "other"}
    assert Settings.from_env({}).partner_clients == {}
    assert "PARTNER_CLIENTS" in refused({"PARTNER_CLIENTS": "no-secret"})


def test_wechat_defaults_and_bases():
    s = Settings.from_env({"WECHAT_API_BASE": "http://127.0.0.1:7000/", "WECHAT_OAUTH_BASE": "http://127.0.0.1:7001/"})
    assert (s.wechat_api_base, s.wechat_oauth_base) == ("http://127.0.0.1:7000", "http://127.0.0.1:7001")
    d = Settings.from_env({})
    assert (d.wechat_api_base, d.wechat_oauth_base) == ("https://api.weixin.qq.com", "https://open.weixin.qq.com")
    assert d.wechat_mp_appid == Settings().wechat_mp_appid


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "80.5"])
def test_bad_port(port):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"PORT": port})
    assert "PORT" in str(exc.value)


@pytest.mark.parametrize("port", ["1", "65535"])
def test_port_bounds(port):
    assert Settings.from_env({"PORT": port}).port == int(port)


def test_postgresql_scheme_is_normalised():
    s = Settings.from_env({"DATABASE_URL": "postgresql://u:p@localhost:5432/db"})
    assert s.database_url == "postgres://u:p@localhost:5432/db"
    assert s.db_backend == "postgres"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgres:db", "file:///tmp/x.db"])
def test_unknown_database_scheme(url):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"DATABASE_URL": url})
    assert "DATABASE_URL" in str(exc.value)


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "localhost:8000", "http://", "//example.com", "zwfw.example.gov.cn"]
)
def test_bad_base_url(url):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"BASE_URL": url})
    assert "BASE_URL" in str(exc.value)


def test_bad_app_env():
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"APP_ENV": "staging"})
    assert "APP_ENV" in str(exc.value)


@pytest.mark.parametrize(("name", "value"), [("WORKERS", "0"), ("WORKERS", "65"), ("GUIDE_CACHE_SECONDS", "-5")])
def test_other_integers_are_bounded(name, value):
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({name: value})
    assert name in str(exc.value)


def test_booleans_and_overrides():
    s = Settings.from_env({"LOAD_DEMO": "no", "AUTO_MIGRATE": "0", "ACCESS_LOG": "off"}, workers=4)
    assert (s.load_demo, s.auto_migrate, s.access_log, s.workers) == (False, False, False, 4)
    s = Settings.from_env({**PRODUCTION, "LOAD_DEMO": "yes"})
    assert s.load_demo is True
    assert Settings.from_env({"REDIS_URL": "redis://r:6379/0"}).redis_url == "redis://r:6379/0"
    assert Settings.from_env({"LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_a_repeated_pii_key_id_is_refused():
    assert "PII_KEYS" in refused(production(PII_KEYS=f"k1:{KEY},k1:{OTHER_KEY}"))


@pytest.mark.parametrize(
    ("name", "value"),
    [("WECHAT_MP_TOKEN", "ab"), ("WECHAT_MP_TOKEN", "has space"), ("WECHAT_MP_AES_KEY", "short"),
     ("WECHAT_MP_AES_KEY", "A" * 44)],
)  # fmt: skip
def test_callback_token_and_aes_key_are_checked(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**PRODUCTION, name: value})


# ---------------------------------------------------------------- construction, replace() and the environment


def test_direct_construction_ignores_the_environment(monkeypatch, tmp_path):
    for name, value in {**PRODUCTION, "PORT": "9000", "REDIS_URL": "redis://r:6379/0", "LOAD_DEMO": "no",
                        "FORWARDED_SECRET": "proxy", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    s = Settings(env="test", base_url="http://testserver")
    assert (s.env, s.port, s.redis_url, s.load_demo) == ("test", 8000, None, True)
    assert s.database_url == f"sqlite://{ROOT / 'data' / 'zuiduo.sqlite3'}"
    assert (s.forwarded_secret, s.prometheus_multiproc_dir) == (None, None)
    assert s.secret_key == Settings.from_env({}).secret_key
    assert s.jwt_issuer == "http://testserver"  # derived defaults follow the stated fields
    assert Settings.from_env().port == 9000  # only from_env reads it


def test_direct_construction_validates_like_the_environment():
    for changes, name in [
        ({"port": 0}, "PORT"),
        ({"wechat_mp_token": "ab"}, "WECHAT_MP_TOKEN"),
        ({"case_no_prefix": "zjj"}, "CASE_NO_PREFIX"),
        ({"pii_keys": {"k1": b"short"}}, "PII_KEYS[k1]"),
        ({"pii_active_kid": "k9"}, "PII_ACTIVE_KID"),
        ({"sms_sender": "http"}, "SMS_GATEWAY_URL"),
        ({"env": "production"}, "SECRET_KEY"),  # production requires its secrets stated
    ]:
        with pytest.raises(SettingsError, match=re.escape(name)):
            Settings(**changes)
    with pytest.raises(SettingsError, match="not a setting"):
        Settings(max_page_size=100)


def test_settings_are_immutable():
    s = Settings()
    with pytest.raises(ValueError):
        s.port = 9000  # type: ignore[misc]
    assert s.port == 8000


def test_replace_changes_fields_and_keeps_the_rest():
    s = Settings.from_env({"PORT": "9000", "WORKERS": "4", "SECRET_KEY": "another development secret"})
    r = s.replace(workers=2, redis_url="redis://r:6379/0")
    assert (r.port, r.workers, r.redis_url, r.secret_key) == (9000, 2, "redis://r:6379/0", s.secret_key)
    assert (r.pii_keys, r.pii_index_key) == (s.pii_keys, s.pii_index_key)
    assert (s.workers, s.redis_url) == (4, None)  # the original is unchanged
    assert s.replace() == s and s.replace() is not s


def test_replace_validates_like_construction():
    s = Settings(env="test")
    with pytest.raises(SettingsError, match="PORT must be between 1 and 65535"):
        s.replace(port=70000)
    with pytest.raises(SettingsError, match="WECHAT_MP_AES_KEY"):
        s.replace(wechat_mp_aes_key="short")
    with pytest.raises(SettingsError, match="REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL"):
        s.replace(realname_verifier="http")
    with pytest.raises(SettingsError, match="production mode requires these environment variables"):
        s.replace(env="production")
    with pytest.raises(SettingsError, match="not a setting"):
        s.replace(extra={})
    prod = Settings.from_env(PRODUCTION)
    assert prod.replace(workers=8).is_production
    with pytest.raises(SettingsError, match="SMS_SENDER=console"):
        prod.replace(sms_sender="console")


def test_replace_derives_unstated_defaults_again():
    s = Settings(env="test", base_url="http://testserver")
    r = s.replace(base_url="https://zwfw.example.gov.cn/")
    assert (r.base_url, r.jwt_issuer) == ("https://zwfw.example.gov.cn", "https://zwfw.example.gov.cn")
    stated = Settings.from_env({"JWT_ISSUER": "https://id.example.gov.cn"})
    assert stated.replace(base_url="https://zwfw.example.gov.cn").jwt_issuer == "https://id.example.gov.cn"


def test_millisecond_variables_are_seconds_in_the_settings():
    s = Settings.from_env({"WECHAT_TIMEOUT_MS": "300", "WECHAT_REPLY_BUDGET_MS": "4500"})
    assert (s.wechat_timeout, s.wechat_reply_budget) == (0.3, 4.5)
    assert (Settings().wechat_timeout, Settings().wechat_reply_budget) == (5.0, 4.0)
    assert "WECHAT_TIMEOUT_MS" in refused({"WECHAT_TIMEOUT_MS": "5001"})
    assert "WECHAT_REPLY_BUDGET_MS" in refused({"WECHAT_REPLY_BUDGET_MS": "0.5"})


def test_code_only_fields_are_not_read_from_the_environment():
    s = Settings.from_env({"MANAGE_DB": "false", "APP_NAME": "other", "CACHE_POLL_SECONDS": "9"})
    assert (s.manage_db, s.app_name, s.cache_poll_seconds) == (True, "zuiduo", 0.5)
    assert not {"MANAGE_DB", "APP_NAME", "CACHE_POLL_SECONDS"} & set(Settings.variables().values())


def test_each_field_reads_its_own_variable_only():
    assert Settings.from_env({"ENV": "production", "port": "9000", "app_env": "production"}).env == "development"
    assert Settings.from_env({"PORT": "9000"}).port == 9000


def test_secrets_stay_out_of_repr():
    s = Settings.from_env({**PRODUCTION, "FORWARDED_SECRET": "proxy-secret-42", "SMS_GATEWAY_KEY": "sms-key-42"})
    text = repr(s)
    for secret in (SECRET, MP_SECRET, MINI_SECRET, "prodcallbacktoken42", "proxy-secret-42", "sms-key-42", KEY):
        assert secret not in text
    assert "wx0000000000000001" in text


def test_bad_values_name_the_variable_not_the_secret():
    message = refused({"SECRET_KEY": "x" * 40, "PII_INDEX_KEY": "not-base64-secret!"})
    assert "PII_INDEX_KEY" in message and "not-base64-secret!" not in message


# ---------------------------------------------------------------- FORWARDED_SECRET and PROMETHEUS_MULTIPROC_DIR


def test_forwarded_secret():
    assert Settings.from_env({}).forwarded_secret is None
    assert Settings.from_env({"FORWARDED_SECRET": "proxy-secret"}).forwarded_secret == "proxy-secret"
    assert Settings.from_env({"FORWARDED_SECRET": ""}).forwarded_secret is None


def test_prometheus_multiproc_dir(tmp_path):
    assert Settings.from_env({}).prometheus_multiproc_dir is None
    assert Settings.from_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).prometheus_multiproc_dir == tmp_path
    assert "PROMETHEUS_MULTIPROC_DIR" in refused({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})
    (tmp_path / "file").write_text("")
    assert "PROMETHEUS_MULTIPROC_DIR" in refused({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "file")})


# ---------------------------------------------------------------- the README's table


def test_the_readme_lists_every_variable_once():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = [name for cell in rows for name in re.findall(r"`([A-Z0-9_]+)`", cell)]
    assert sorted(listed) == sorted(set(listed)), "a variable is listed twice"
    assert set(listed) == set(Settings.variables().values())


# ---------------------------------------------------------------- production refuses development values and weak keys


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_production_with_the_repositorys_own_development_values_names_every_one_in_one_message():
    """The way it was found: production started with SECRET_KEY, PII keys, WeChat values and BASE_URL from dev."""
    dev = Settings()  # the development defaults, stated explicitly as an operator copying them would
    env = production(
        SECRET_KEY=DEV_SECRET,
        PII_KEYS=f"dev1:{_b64(dev.pii_keys['dev1'])}",
        PII_INDEX_KEY=_b64(dev.pii_index_key),
        WECHAT_MP_APPID=dev.wechat_mp_appid,
        WECHAT_MP_SECRET=dev.wechat_mp_secret,
        WECHAT_MINI_APPID=dev.wechat_mini_appid,
        WECHAT_MINI_SECRET=dev.wechat_mini_secret,
        WECHAT_MP_TOKEN=dev.wechat_mp_token,
        WECHAT_MP_AES_KEY=dev.wechat_mp_aes_key,
        BASE_URL="http://zwfw.example.gov.cn",
    )
    message = refused(env)
    for name in ("SECRET_KEY", "WECHAT_MP_APPID", "WECHAT_MP_SECRET", "WECHAT_MINI_APPID", "WECHAT_MINI_SECRET",
                 "WECHAT_MP_TOKEN", "WECHAT_MP_AES_KEY"):  # fmt: skip
        assert f"{name} is the development value" in message, name
    assert "PII_KEYS[dev1] is derived from the development SECRET_KEY" in message
    assert "PII_INDEX_KEY is derived from the development SECRET_KEY" in message
    assert "BASE_URL must start with https://" in message
    assert message.count(";") == 9  # ten problems, one message
    for secret in (DEV_SECRET, dev.wechat_mp_secret, dev.wechat_mini_secret, dev.wechat_mp_aes_key):
        assert secret not in message  # names the variable, never repeats the secret
    assert Settings.from_env({"SECRET_KEY": DEV_SECRET, "BASE_URL": "http://127.0.0.1:8000"}).is_dev  # dev is fine


@pytest.mark.parametrize(
    ("secret", "why"),
    [("a" * 32, "repeats one character"), ("ab" * 20, "repeats a 2-character pattern"),
     ("0123456789abcdef" * 2, "repeats a 16-character pattern"), ("".join(chr(65 + i) for i in range(32)), "counting"),
     ("abc" * 10 + "XY", "fewer than 8 distinct characters")],
)  # fmt: skip
def test_production_refuses_a_patterned_or_low_variety_secret_key(secret, why):
    message = refused(production(SECRET_KEY=secret))
    assert names(message, "SECRET_KEY") and why in message
    assert secret not in message
    assert Settings.from_env({"SECRET_KEY": secret}).secret_key == secret  # development does not judge


@pytest.mark.parametrize(
    ("key", "why"),
    [(bytes(32), "repeats one byte"), (b"a" * 32, "repeats one byte"), (bytes(range(32)), "counting sequence"),
     (bytes(range(64, 0, -2)), "counting sequence"), (bytes([1, 2, 3, 4]) * 8, "repeats a 4-character pattern"),
     (bytes(sorted((i * 37) % 10 for i in range(32))), "fewer than 16 distinct bytes"),
     (b"prod-callback-encoding-aes-key12", "printable text")],
)  # fmt: skip
def test_production_refuses_low_entropy_keys(key, why):
    for variable, value in (("PII_KEYS", f"k1:{_b64(key)}"), ("PII_INDEX_KEY", _b64(key)),
                            ("WECHAT_MP_AES_KEY", _b64(key).rstrip("="))):  # fmt: skip
        message = refused(production(**{variable: value}))
        assert names(message, variable) and why in message, (variable, message)


def test_production_refuses_one_key_for_two_purposes():
    assert "PII_INDEX_KEY is the same key as PII_KEYS[k1]" in refused(production(PII_INDEX_KEY=KEY))
    assert "PII_KEYS[k2] is the same key as PII_KEYS[k1]" in refused(production(PII_KEYS=f"k1:{KEY},k2:{KEY}"))


@pytest.mark.parametrize("url", ["http://zwfw.example.gov.cn", "http://10.0.0.1:8000"])
def test_production_refuses_a_plain_http_base_url(url):
    message = refused(production(BASE_URL=url))
    assert "BASE_URL must start with https://" in message and url in message
    assert Settings.from_env({"BASE_URL": url}).base_url == url


@pytest.mark.parametrize("token", ["prodtoken1", "aaaaaaaaaaaaaaaaaaaa", "abababababababab"])
def test_production_refuses_a_short_or_patterned_callback_token(token):
    assert names(refused(production(WECHAT_MP_TOKEN=token)), "WECHAT_MP_TOKEN")
    assert Settings.from_env({"WECHAT_MP_TOKEN": token}).wechat_mp_token == token


def test_production_accepts_freshly_generated_values():
    """No false alarms: 300 sets of values made the way the README says are all accepted."""
    import secrets

    for _ in range(300):
        env = production(
            SECRET_KEY=secrets.token_urlsafe(32),
            PII_KEYS=f"k1:{_b64(secrets.token_bytes(32))},k2:{_b64(secrets.token_bytes(32))}",
            PII_INDEX_KEY=_b64(secrets.token_bytes(32)),
            WECHAT_MP_SECRET=secrets.token_hex(16),
            WECHAT_MINI_SECRET=secrets.token_hex(16),
            WECHAT_MP_TOKEN=secrets.token_hex(16),
            WECHAT_MP_AES_KEY=_b64(secrets.token_bytes(32)).rstrip("="),
        )
        assert Settings.from_env(env).is_production
