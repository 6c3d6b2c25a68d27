"""The bare Celery baseline: a default Celery app with the same task name on the same queue.

With `BARE_DELIVERY=courier` it gets courier's delivery settings (acknowledged after the job ran,
one message at a time, the STARTED state recorded, courier's default time limits): the same
guarantees, without the kit.
"""

import os

from celery import Celery

app = Celery("bare", broker=os.environ["BROKER_URL"], backend=os.environ["RESULT_BACKEND"])
if os.environ.get("BARE_DELIVERY") == "courier":
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_time_limit=300,
        task_soft_time_limit=270,
    )


@app.task(name="demo.add")  # type: ignore[untyped-decorator]
def add(a: float, b: float) -> float:
    return a + b
