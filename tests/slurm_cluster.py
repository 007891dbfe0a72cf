"""A throw-away one-node SLURM cluster for the tests (pytest fixture ``slurm_cluster``).

On a Debian 12 machine (root, no systemd as PID 1):

- when running as root and ``slurmctld`` is missing, installs Debian's
  ``slurm-wlm`` and ``munge`` with apt-get (update first);
- starts ``munged`` (as the munge user, with its own socket, pid, log and seed
  files), ``slurmctld`` and ``slurmd`` from a slurm.conf generated in a fresh
  temporary directory (free ports, its own state, spool, pid and log paths), so
  it never touches a system cluster nor another test session's cluster;
- waits until ``sinfo -h -o %T`` says ``idle`` and yields a ``SlurmCluster``
  whose ``env`` (SLURM_CONF, MUNGE_SOCKET, PATH with the SLURM binaries) the
  commands under test run with;
- on teardown stops slurmd, slurmctld and munged through their pid files and
  waits until each has exited, stops any process left with this cluster's
  SLURM_CONF in its environment (job steps, jobs), then removes the directory.

Two clusters on one machine (two test sessions) do not meet: each has its own
ports (free ones, found by binding to port 0; found again if one was taken
before the daemons bound it), its own munge socket, and its own state, spool,
pid and log directories.

Where the cluster cannot be had (not root, no apt-get, the install fails, a
daemon does not come up) the tests that use it are skipped with the reason;
with CI=true in the environment they fail instead.

Standalone check: ``python tests/slurm_cluster.py`` brings a cluster up, runs
``sbatch --wait`` on a two-task array, and takes it down again.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["slurm_cluster", "SlurmCluster", "ClusterUnavailable", "start_cluster", "on_ci", "read_pid", "alive",
           "free_ports"]

SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
PORT_TRIES = 3  # starts with newly found free ports when one was taken meanwhile
APT_TIMEOUT = 900  # seconds for each of apt-get update and apt-get install
START_TIMEOUT = 60  # seconds for each daemon, and for the node to become idle


class ClusterUnavailable(RuntimeError):
    """No cluster can be started here; the message says why."""


def on_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _which(name):
    path = shutil.which(name)
    if path:
        return path
    for d in SBIN:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return f"(no {os.path.basename(path)})"


def _one_line(text, limit=400):
    text = " | ".join(s.strip() for s in str(text).splitlines() if s.strip())
    return text if len(text) <= limit else text[:limit] + " ..."


def install(log=print):
    """apt-get install slurm-wlm and munge when slurmctld is missing (root only)."""
    if _which("slurmctld") and _which("slurmd") and _which("munged") and _which("sbatch"):
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable("SLURM is not installed and the tests do not run as root")
    if not _which("apt-get"):
        raise ClusterUnavailable("SLURM is not installed and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # wait for another apt-get rather than fail
    for cmd in (["apt-get", *lock, "update"],
                ["apt-get", *lock, "install", "-y", "--no-install-recommends", "slurm-wlm", "munge"]):
        log("slurm_cluster: " + " ".join(cmd))
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=APT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ClusterUnavailable(f"{' '.join(cmd)} took more than {APT_TIMEOUT} s") from None
        if p.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed ({p.returncode}): "
                                     + _one_line("\n".join(p.stdout.splitlines()[-5:])))
    for name in ("slurmctld", "slurmd", "munged", "sbatch", "sinfo"):
        if not _which(name):
            raise ClusterUnavailable(f"{name} is still missing after installing slurm-wlm and munge")


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _reap(pid):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop_pid(pid, timeout):
    """SIGTERM, then SIGKILL after ``timeout`` s; True when SIGKILL was needed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_for(lambda: (_reap(pid), not alive(pid))[1], timeout):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: (_reap(pid), not alive(pid))[1], 10)
    return True


def _wait_for(predicate, timeout, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


class SlurmCluster:
    """A one-node cluster living in ``root`` (a temporary directory)."""

    def __init__(self, root):
        self.root = root
        self.conf = os.path.join(root, "slurm.conf")
        self.munge_socket = os.path.join(root, "munge", "munge.socket")
        self.pidfiles = {  # stopped in this order
            "slurmd": os.path.join(root, "run", "slurmd.pid"),
            "slurmctld": os.path.join(root, "run", "slurmctld.pid"),
            "munged": os.path.join(root, "munge", "munged.pid"),
        }
        self.logs = {
            "slurmd": os.path.join(root, "log", "slurmd.log"),
            "slurmctld": os.path.join(root, "log", "slurmctld.log"),
            "munged": os.path.join(root, "munge", "munged.log"),
        }
        bindir = os.path.dirname(_which("sbatch") or "/usr/bin/sbatch")
        path = os.environ.get("PATH", "")
        self.env = dict(os.environ, SLURM_CONF=self.conf, MUNGE_SOCKET=self.munge_socket,
                        PATH=path if bindir in path.split(os.pathsep) else bindir + os.pathsep + path)
        for k in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
            self.env.pop(k, None)
        self.node = None
        self.ports = None

    def run(self, *cmd, timeout=30, check=True):
        p = subprocess.run(list(cmd), env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed ({p.returncode}): {_one_line(p.stderr or p.stdout)}")
        return p

    # -- start ---------------------------------------------------------------------

    def start(self, log=print):
        for d in ("munge", "state", "spool", "run", "log"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        os.chmod(self.root, 0o755)  # the munge and slurm users must reach their directories
        self._start_munge()
        for attempt in range(PORT_TRIES):
            self._write_conf()
            try:
                self._start("slurmctld", [_which("slurmctld"), "-f", self.conf])
                self._start("slurmd", [_which("slurmd"), "-f", self.conf])
                self._wait_idle()
                break
            except ClusterUnavailable:
                # the free ports found may have been taken by another process (another test
                # session's cluster) before our daemons bound them: try new ones
                if attempt + 1 == PORT_TRIES or not self._port_taken():
                    raise
                self._stop_daemons(("slurmd", "slurmctld"))
                log(f"slurm_cluster: a port was taken meanwhile; new ports (try {attempt + 2})")
        log(f"slurm_cluster: node {self.node} idle ({self.conf}, ports {self.ports})")
        return self

    def _port_taken(self):
        return any("Address already in use" in _tail(self.logs[name], 30) for name in ("slurmctld", "slurmd"))

    def _start_munge(self):
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            raise ClusterUnavailable("there is no munge user (is the munge package installed?)") from None
        key = "/etc/munge/munge.key"
        if not os.path.exists(key):
            mk = _which("mungekey")
            if mk is None:
                raise ClusterUnavailable(f"{key} is missing and there is no mungekey to create it")
            subprocess.run([mk, "--create", "--keyfile", key], check=False, capture_output=True)
            if os.path.exists(key):
                os.chown(key, munge.pw_uid, munge.pw_gid)
                os.chmod(key, 0o400)
        d = os.path.dirname(self.munge_socket)
        os.chown(d, munge.pw_uid, munge.pw_gid)
        os.chmod(d, 0o755)
        cmd = [_which("munged"), f"--socket={self.munge_socket}", f"--pid-file={self.pidfiles['munged']}",
               f"--log-file={self.logs['munged']}", f"--seed-file={os.path.join(d, 'munged.seed')}",
               f"--key-file={key}"]
        if os.geteuid() == 0:
            kw = dict(user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])
        else:
            kw = {}
        self._spawn("munged", cmd, **kw)
        if not _wait_for(lambda: os.path.exists(self.munge_socket) and read_pid(self.pidfiles["munged"]),
                         START_TIMEOUT):
            raise ClusterUnavailable(f"munged did not come up: {_one_line(_tail(self.logs['munged'], 5))}")

    def _spawn(self, name, cmd, **kw):
        """Start a daemon that forks into the background; the parent must exit 0."""
        try:
            p = subprocess.run(cmd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=START_TIMEOUT, **kw)
        except subprocess.TimeoutExpired:
            raise ClusterUnavailable(f"{name} did not go to the background within {START_TIMEOUT} s") from None
        if p.returncode != 0:
            raise ClusterUnavailable(f"{name} failed to start ({p.returncode}): "
                                     f"{_one_line(p.stderr or p.stdout or _tail(self.logs[name], 5))}")

    def _write_conf(self):
        self.node = socket.gethostname().split(".")[0]
        try:
            socket.gethostbyname(self.node)
        except OSError:
            raise ClusterUnavailable(f"the host name {self.node} does not resolve") from None
        cpus = os.cpu_count() or 1
        with contextlib.suppress(AttributeError):
            cpus = len(os.sched_getaffinity(0))
        mem = 1024
        with contextlib.suppress(OSError, ValueError, IndexError):
            out = subprocess.run(["free", "-m"], capture_output=True, text=True).stdout
            mem = int(next(l for l in out.splitlines() if l.startswith("Mem:")).split()[1])
        mem = max(1, int(mem * 0.9))  # below what slurmd measures, or the node drains
        try:
            pwd.getpwnam("slurm")
            slurm_user = "slurm"
        except KeyError:
            slurm_user = "root"
        if os.geteuid() == 0 and slurm_user == "slurm":
            u = pwd.getpwnam("slurm")
            for d in ("state", "log", "run"):
                os.chown(os.path.join(self.root, d), u.pw_uid, u.pw_gid)
        ctld_port, d_port = self.ports = free_ports(2)
        r = self.root
        lines = [
            "ClusterName=mcinittest",
            f"SlurmctldHost={self.node}",
            f"SlurmUser={slurm_user}",
            "SlurmdUser=root",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool",
            f"SlurmctldPidFile={self.pidfiles['slurmctld']}",
            f"SlurmdPidFile={self.pidfiles['slurmd']}",
            f"SlurmctldLogFile={self.logs['slurmctld']}",
            f"SlurmdLogFile={self.logs['slurmd']}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "SchedulerParameters=batch_sched_delay=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "MinJobAge=300",
            f"NodeName={self.node} CPUs={cpus} RealMemory={mem} State=UNKNOWN",
            f"PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)

    def _start(self, name, cmd):
        self._spawn(name, cmd)
        if not _wait_for(lambda: read_pid(self.pidfiles[name]) and alive(read_pid(self.pidfiles[name])),
                         START_TIMEOUT):
            raise ClusterUnavailable(f"{name} did not come up: {_one_line(_tail(self.logs[name], 5))}")

    def _wait_idle(self):
        state = {"last": ""}

        def idle():
            for name in ("slurmctld", "slurmd"):
                pid = read_pid(self.pidfiles[name])
                if not pid or not alive(pid):
                    raise ClusterUnavailable(f"{name} exited: {_one_line(_tail(self.logs[name], 5))}")
            p = self.run(_which("sinfo"), "-h", "-o", "%T", check=False, timeout=15)
            state["last"] = (p.stdout or p.stderr).strip()
            return p.returncode == 0 and state["last"].split() == ["idle"]

        if not _wait_for(idle, START_TIMEOUT, interval=0.1):
            raise ClusterUnavailable(f"the node is not idle after {START_TIMEOUT} s (sinfo: "
                                     f"{_one_line(state['last'], 120)}); slurmd: "
                                     f"{_one_line(_tail(self.logs['slurmd'], 3))}")

    # -- stop ----------------------------------------------------------------------

    def stop(self, timeout=30):
        """Stop slurmd, slurmctld and munged by their pid files and wait for each to exit, then
        any process of this cluster left behind (a job step, a job's process).

        Returns the names of daemons (and the pids of leftovers) that had to be killed with SIGKILL."""
        ctld = read_pid(self.pidfiles["slurmctld"])
        if ctld and alive(ctld) and _which("scancel"):
            # jobs a failed test left behind: cancel them so that no job step outlives slurmd
            with contextlib.suppress(Exception):
                self.run(_which("scancel"), "--user", pwd.getpwuid(os.geteuid()).pw_name, check=False, timeout=15)
                _wait_for(lambda: not self.run(_which("squeue"), "-h", "-o", "%i", check=False,
                                               timeout=15).stdout.strip(), 15, interval=0.2)
        killed = self._stop_daemons(self.pidfiles, timeout)
        killed += self._stop_leftovers(timeout)
        return killed

    def _stop_daemons(self, names, timeout=30):
        killed = []
        for name in names:
            pid = read_pid(self.pidfiles[name])
            if not pid or not alive(pid):
                continue
            if _stop_pid(pid, timeout):
                killed.append(name)
        return killed

    def _leftovers(self):
        """Processes of this cluster that outlived its daemons: job steps (slurmstepd) and the
        jobs' processes, found by this cluster's SLURM_CONF in their environment."""
        mark = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if mark in f.read().split(b"\0") and alive(int(entry)):
                        pids.append(int(entry))
        return pids

    def _stop_leftovers(self, timeout=30):
        if not os.path.isdir("/proc"):
            return []
        return [f"pid {pid}" for pid in self._leftovers() if _stop_pid(pid, timeout)]

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def diagnostics(self):
        return "\n".join(f"--- {n} log ---\n{_tail(p, 20)}" for n, p in self.logs.items())


def start_cluster(log=print):
    """Install if needed and start a cluster; raises ClusterUnavailable (daemons already stopped)."""
    if os.geteuid() != 0 and not _which("slurmctld"):
        raise ClusterUnavailable("SLURM is not installed and the tests do not run as root")
    install(log=log)
    if os.geteuid() != 0:
        raise ClusterUnavailable("starting munged and slurmd needs root")
    root = tempfile.mkdtemp(prefix="mcinit-slurm-")
    cluster = SlurmCluster(root)
    try:
        return cluster.start(log=log)
    except BaseException as e:
        diag = cluster.diagnostics()
        cluster.stop()
        cluster.cleanup()
        if isinstance(e, ClusterUnavailable):
            e.diagnostics = diag
        raise


try:
    import pytest
except ImportError:  # standalone use
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="session")
    def slurm_cluster():
        """A running one-node SLURM cluster; skipped (failed with CI=true) where none can be had."""
        try:
            cluster = start_cluster(log=lambda m: print(m, file=sys.stderr))
        except ClusterUnavailable as e:
            msg = f"no SLURM cluster: {e}"
            if on_ci():
                pytest.fail(msg + "\n" + getattr(e, "diagnostics", ""), pytrace=False)
            pytest.skip(msg)
        try:
            yield cluster
        finally:
            killed = cluster.stop()
            cluster.cleanup()
            if killed:
                print(f"slurm_cluster: had to SIGKILL {', '.join(killed)}", file=sys.stderr)


def _selfcheck():
    t0 = time.monotonic()
    cluster = start_cluster()
    print(f"up in {time.monotonic() - t0:.1f} s")
    try:
        script = os.path.join(cluster.root, "hello.sh")
        with open(script, "w") as f:
            f.write("#!/bin/bash\n#SBATCH --array=0-1\n"
                    f"#SBATCH --output={cluster.root}/hello-%A_%a.out\n"
                    "echo hello from task $SLURM_ARRAY_TASK_ID\n")
        t1 = time.monotonic()
        p = cluster.run("sbatch", "--wait", script, timeout=120, check=False)
        print(p.returncode, p.stdout.strip(), p.stderr.strip(), f"{time.monotonic() - t1:.1f} s")
        for name in sorted(os.listdir(cluster.root)):
            if name.startswith("hello-"):
                print(name, open(os.path.join(cluster.root, name)).read().strip())
    finally:
        print("killed:", cluster.stop())
        cluster.cleanup()
    print(f"total {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    _selfcheck()
