"""Python multiprocessing (fork start method) breaking copy-on-write, for
tests/t_cow_python.py: the parent builds 100,000 small objects and a 32 MiB
bytearray; each of two workers reads every object (reference counts are
written in the objects' pages: COW breaks all over the object heap) and
writes one byte in every 4th page of the buffer, a known number of pages
from one known line. Prints "@" lines with the buffer address and counts,
each with one write (print makes two where PYTHONUNBUFFERED is set, and
the workers' lines could interleave)."""
import ctypes, multiprocessing as mp, os, sys
PAGE = os.sysconf("SC_PAGE_SIZE")
NBIG = 32 << 20
STRIDE = 4 * PAGE
data = [str(i) * 8 for i in range(100000)]
big = bytearray(NBIG)
addr = ctypes.addressof((ctypes.c_char * NBIG).from_buffer(big))

def worker():
    n = sum(len(s) for s in data)      # refcounts: COW breaks all over the object heap
    for off in range(0, NBIG, STRIDE):  # one write every 4th page of the buffer
        big[off] = 1
    os.write(1, b"@ worker pid=%d buf=%#x len=%d written=%d sum=%d\n" % (os.getpid(), addr, NBIG, NBIG // STRIDE, n))

if __name__ == "__main__":
    mp.set_start_method("fork")
    ps = [mp.Process(target=worker) for _ in range(2)]
    for p in ps: p.start()
    for p in ps: p.join()
    os.write(1, b"@ parent pid=%d codes=%s\n" % (os.getpid(), ",".join(str(p.exitcode) for p in ps).encode()))
