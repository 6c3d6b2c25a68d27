"""Example business code, the part a forking team replaces: its tasks, its periodic job, its HTTP
resource and its settings, handed to the kit as one `Plugin` (`PLUGIN=courier.demo:create_plugin`,
the default)."""

from courier.demo.plugin import create_plugin

__all__ = ["create_plugin"]
