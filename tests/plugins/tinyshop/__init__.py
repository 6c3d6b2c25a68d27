"""A second business package, as small as a plugin can be: one public task, one periodic job and
one HTTP resource, plugged in with `PLUGIN=tinyshop:plugin` and no kit file edited."""

from courier.plugin import Plugin

from .resources import add_routes

plugin = Plugin(
    name="tinyshop",
    task_modules=("tinyshop.tasks",),
    periodic_jobs={"tinyshop.restock": {"task": "tinyshop.restock", "schedule": 1.0}},
    add_routes=add_routes,
)
