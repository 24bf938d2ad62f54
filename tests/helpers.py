"""Small helpers shared by the exercise tests."""


def assert_incorrect(question, answer, fragment: str) -> None:
    """The answer is rejected, and the feedback contains the intended message ``fragment``."""
    feedback = question.evaluate(answer)
    assert feedback.status == "incorrect", feedback
    assert fragment in feedback.message, feedback.message
