"""course_utils: the helper package of the course *The Math Inside LLMs*.

Modules, each named for what it holds:
    runtime     device choice, seeds, quick mode and budgets
    data        Wikipedia prose (offline), small example texts, splits, batches
    tokenizers  character and word tokenizers
    embeddings  GloVe vectors, neighbours, analogies, benchmarks
    exercises   self-checking exercises (check / hint / solution)
    errors      clear errors for bad input
"""

__version__ = "0.1.0"
