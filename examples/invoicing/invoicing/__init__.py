"""invoicing: a service built on courier. The kit runs it because `PLUGIN=invoicing:plugin`
names this object (the image sets it); no kit file is edited."""

from courier.plugin import Plugin

plugin = Plugin(name="invoicing", task_modules=("invoicing.tasks",))
