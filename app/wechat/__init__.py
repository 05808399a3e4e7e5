"""WeChat integration: the async HTTP API client, its errors, and a local fake of WeChat's API for tests."""
