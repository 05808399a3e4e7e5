"""Fixtures of the WeChat client tests: a fake WeChat API per test, settings pointing at it, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from app.settings import Settings
from app.store import Store, make_store
from app.wechat.client import WeChatClient
from tests.fakes.wechat import FakeWeChat


@pytest.fixture
def fake(base_settings: Settings) -> Iterator[FakeWeChat]:
    """A fake WeChat API on 127.0.0.1 that knows the settings' official account and mini program."""
    apps = {
        base_settings.wechat_mp_appid: base_settings.wechat_mp_secret,
        base_settings.wechat_mini_appid: base_settings.wechat_mini_secret,
    }
    with FakeWeChat(apps=apps) as server:
        yield server


@pytest.fixture
def settings(base_settings: Settings, fake: FakeWeChat) -> Settings:
    """The test settings with WeChat's API and OAuth pages on the fake."""
    return base_settings.replace(wechat_api_base=fake.url, wechat_oauth_base=fake.url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """The store of this backend (Redis db 10 or in-process), emptied by the `clean` fixture."""
    client = make_store(settings)
    yield client
    await client.aclose()


@pytest.fixture
async def make_client(settings: Settings, store: Store) -> AsyncIterator[Callable[..., WeChatClient]]:
    """Build clients on the shared store, with settings overrides; all are closed after the test."""
    clients: list[WeChatClient] = []

    def build(**overrides: object) -> WeChatClient:
        client = WeChatClient(settings.replace(**overrides), store)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
def wechat(make_client: Callable[..., WeChatClient]) -> WeChatClient:
    """A client with the test settings."""
    return make_client()
