"""tests/t_real.py runs this under forkscope and strace: subprocess (vfork
and exec), a shell pipeline, a multiprocessing Pool and Process with the
fork start method. Its output and exit status (3) are deterministic."""
import multiprocessing as mp
import subprocess
import sys


def square(x):
    return x * x


def child_exit(code):
    sys.exit(code)


if __name__ == "__main__":
    print(subprocess.run(["echo", "from echo"], capture_output=True, text=True).stdout.strip())
    print(subprocess.check_output("echo shell | tr a-z A-Z", shell=True, text=True).strip())
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        print("sum of squares", sum(pool.map(square, range(100))))
    p = ctx.Process(target=child_exit, args=(5,))
    p.start()
    p.join()
    print("process exit code", p.exitcode)
    sys.exit(3)
