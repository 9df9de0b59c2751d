"""社会保险查询服务 — the sample application the demo estate migrates.

``python -m demo.sampleapp --name legacy --host 127.0.0.11 --port 8000 --db URL`` serves it;
``python -m demo.sampleapp.seed --db URL --rows N`` creates and fills its tables.
"""
