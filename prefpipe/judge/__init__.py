"""The AI judge: a versioned prompt template, a strict verdict parser, both-order judging, and
confidence from verdict-token log-probabilities. Entry point: `judge.judge_pairs`."""
