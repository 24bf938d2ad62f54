"""The course works with the network switched off: in a fresh process whose socket connections raise, with an
empty cache, the Wikipedia text is built from the installed gensim data and GloVe is read from its package."""

import hashlib
import subprocess
import sys
import textwrap

from course_utils import data

SCRIPT = textwrap.dedent("""
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    socket.socket.connect = no_network
    socket.socket.connect_ex = no_network
    socket.create_connection = no_network
    socket.getaddrinfo = no_network

    import hashlib
    from course_utils.data import wiki_text
    from course_utils.embeddings import load_glove

    text = wiki_text()
    kv = load_glove()
    print(hashlib.sha256(text.encode()).hexdigest())
    print(kv.most_similar(positive=["king", "woman"], negative=["man"])[0][0])
""")


def test_wiki_text_and_glove_work_offline_from_an_empty_cache(tmp_path):
    env = {"COURSE_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    digest, queen = out.stdout.split()
    assert queen == "queen"
    # built from scratch in another process, the text is identical to this process's copy
    assert digest == hashlib.sha256(data.wiki_text().encode()).hexdigest()
    assert (tmp_path / "wiki_text.txt").exists() and (tmp_path / "glove-6B-50d.kv").exists()
