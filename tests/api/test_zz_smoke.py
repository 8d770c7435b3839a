import time
from tests.api._otlp import encode

async def test_smoke(env):
    t=time.perf_counter()
    r = await env.send_otlp(encode([dict(body="hi", severity_number=17, attributes={"a": 1, "s": "x"}, trace_id=bytes(range(16)), span_id=bytes(range(8)))], resource={"service.name":"api"}))
    print(r.status_code, r.text)
    env.flush()
    r = await env.query({"dateRange": {"date_from": "-1h"}})
    print(r.json(), time.perf_counter()-t)
