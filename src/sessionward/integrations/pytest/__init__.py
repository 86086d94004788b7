"""The sessionward pytest plugin (entry point ``pytest11``); inactive unless enabled."""
