"""What an LLM proposer is shown and how its answers are read: task context, feedback on
earlier candidates, examples, answer parsing and edit blocks."""
