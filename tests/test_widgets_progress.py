"""course_utils.widgets.text_progress_bars: tqdm.auto bars become text bars inside the block, and only there."""

import tqdm.auto

from course_utils.widgets import text_progress_bars


def test_text_progress_bars_swap_and_restore(capsys):
    before = tqdm.auto.tqdm
    with text_progress_bars(mininterval=0.0):
        assert tqdm.auto.tqdm is not before
        bar = tqdm.auto.tqdm(total=3, desc="training", dynamic_ncols=True)
        for _ in range(3):
            bar.update(1)
        bar.close()
    assert tqdm.auto.tqdm is before
    out = capsys.readouterr().out
    assert "training" in out and "3/3" in out and "100%" in out      # the finished bar, as text on stdout


def test_restored_even_after_an_error():
    before = tqdm.auto.tqdm
    try:
        with text_progress_bars():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert tqdm.auto.tqdm is before
