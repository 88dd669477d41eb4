# The pull state of a sync session (offgate.sync.ops): batch sizing from the gate's heap.
from offgate.sync.ops import BATCH_FIXED, ROW_MAX, PULL_PER_RECORD, PULL_RESERVE, Pulls, pull_size
from offgate.sync.proto import BATCH_MAX_RECORDS


def test_a_cap_set_by_a_response_short_of_heap_rises_again():
    st = Pulls()
    st.sent(40, 40)
    st.shrink()                      # the 40-record response found no heap
    assert st.cap == 20
    st.sent(20, 60)                  # a batch at the cap went out: the cap rises by an eighth
    assert st.cap == 23
    for i in range(100):
        st.sent(st.cap, 100 + i)
    assert st.cap == BATCH_MAX_RECORDS and st.pulled_to == 199
    st.sent(5, 200)                  # a smaller batch (the backlog's end) leaves it
    assert st.cap == BATCH_MAX_RECORDS


def test_pull_size_follows_free_heap_and_the_largest_block():
    assert pull_size(200, None) == 200                       # CPython: no heap figures
    assert pull_size(200, PULL_RESERVE - 1) == 1             # never 0: the host asks again
    assert pull_size(200, PULL_RESERVE + 10 * PULL_PER_RECORD) == 10
    assert pull_size(200, 10 ** 6, BATCH_FIXED + 20 * ROW_MAX) == 20
    assert pull_size(7, 10 ** 6, 10 ** 6) == 7
