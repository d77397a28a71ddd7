"""The skill library (architecture §6): curated cards, retrieval, and mining new skills."""
from kopt.skills.library import Library
from kopt.skills.schema import Card, Evidence

__all__ = ["Card", "Evidence", "Library"]
