"""WEDGE-style stress inputs: legal inputs (a validator says so) on which a program is slow."""
