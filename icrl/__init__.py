"""icrl: learning histories in, in-context reinforcement learners out."""

__version__ = "0.1.0"
