import redis.asyncio as aioredis

from agentfleet_runtime.testing.redis import RedisServer


async def test_redis_server_is_real_and_restartable(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        redis_server.restart()  # no persistence: a restart loses data, as configured
        await client.connection_pool.disconnect()
        assert await client.get("k") is None
    finally:
        await client.aclose()
