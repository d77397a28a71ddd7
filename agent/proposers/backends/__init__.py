"""LLM backends a proposer talks to: OpenAI-compatible servers, LiteLLM, a local Hugging
Face model, and what their tokens cost."""
