"""Mitogen's linear strategy, as installed with requirements-mitogen.txt: found through Python's import path
(scripts/with-mitogen finds the same directory from the Python beside ansible-playbook)."""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
