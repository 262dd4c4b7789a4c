"""Response pairs from prompts: the five strategies of the design, near-duplicate dropping and
A/B randomization. Entry point: `pairs.generate_pairs`."""
