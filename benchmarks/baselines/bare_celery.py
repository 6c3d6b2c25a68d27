"""The bare Celery baseline: a default Celery app with the same task name on the same queue."""

import os

from celery import Celery

app = Celery("bare", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])


@app.task(name="demo.add")  # type: ignore[untyped-decorator]
def add(a: float, b: float) -> float:
    return a + b
