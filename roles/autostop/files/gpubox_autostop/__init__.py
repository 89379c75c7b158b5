"""gpubox autostop: power the box off when nobody uses it, and act on spot interruption notices.

Runs on the box as a root systemd service, started at every boot; standard library only, Python 3.10+.
The box is launched with shutdown behaviour "stop", so powering off stops it (the disk is kept) without any
AWS credentials on the box.

Commands (installed as /usr/local/sbin/gpubox-autostop, with /usr/local/bin/gpubox-hold a symlink to it;
called as gpubox-hold it is the hold command):
  gpubox-autostop run [--config FILE] [--idle-minutes N ...]   the agent
  gpubox-autostop check-config [--config FILE]                 validate, print the effective settings
  gpubox-autostop hold [2h | 30m | 1h30m | off]                = gpubox-hold
  gpubox-hold                                                  the holds and what the agent last decided

The box is ACTIVE while any signal holds (``signals`` picks which are read):
  jupyter  a kernel is busy, or Jupyter saw activity within the idle window: the last_activity of
           /api/status (any API request, including a JupyterLab tab that is visible: it polls every 10 s;
           set jupyter_server_activity=false to count kernels and terminals only), of each kernel and of each
           terminal. The agent's own requests carry no_track_activity=1, so they do not count.
  gpu      the busiest GPU's utilization.gpu (nvidia-smi) is above gpu_threshold percent.
  ssh      an interactive SSH session: a process whose controlling terminal is a pts and that descends from
           sshd (or sshd-session, OpenSSH 9.8+). Read from /proc rather than utmp (`who`) or logind: there is
           no logind in a container, and utmp is being retired (Y2038) and is not written everywhere. An
           `ssh -N` tunnel has no terminal, so it does not count; neither does a detached tmux (its server
           is not under sshd). An open terminal counts even if untouched: max_hours guards a forgotten one.
  cpu      the CPUs were busy (user, nice, system, irq, softirq, iowait from /proc/stat, between two polls)
           above cpu_threshold percent of all CPUs together (in a container, /proc/stat is the host's).
  hold     a user ran `gpubox-hold 2h`. Holds live in hold_dir (/var/lib/gpubox/hold, mode 1777: world
           writable and sticky, so users need no root and cannot remove each other's files). One file per
           user, named by uid, holding the expiry as Unix seconds. The agent reads only files whose owner is
           the uid in their name, opens them without following links, reads at most 64 bytes and ignores
           (and logs) anything else, including an expiry further than max_hold_hours away.
  job      a job of playbooks/run.yml runs: systemd keeps a directory named after each running job in jobs_dir
           (its unit's RuntimeDirectory, removed when the job ends, whatever the way), so the agent reads a
           directory listing and starts nothing.

Idle for idle_minutes (counted from this agent's start at the earliest, so a reboot re-arms it; nothing is
read from a previous run) -> a `wall` warning that says how to keep the box (`gpubox-hold 2h`), then
grace_minutes during which any activity cancels (the idle clock restarts at that activity), then
poweroff_command. max_hours (0 = off) is a hard cap on the time since the system started (PID 1's start, so
a container counts from its own start): the same warning and grace, and then the box stops even while busy.
A hold does not override the cap: the cap is a budget guard, and a hold is at most max_hold_hours anyway.
stop_at ("20:00", UTC, or "20:00 Europe/Berlin", a zone the box's tzdata knows) stops the box daily at that time,
the first one after this agent's start, with the same warning and grace, even while busy; a hold defers it (until
the hold ends, then the warning), as it defers an idle stop; only max_hours overrides a hold.
Before each power-off (idle, max_hours, stop_at; once, not again on a retry), every executable in on_stop_dir
(/etc/gpubox/on-stop.d, chosen as the interrupt hooks are) runs in name order, each killed after on_stop_timeout
seconds, each result logged; hooks get GPUBOX_STOP_REASON (idle, cap or stop_at).
idle_minutes 0 turns the idle stop off (the cap still applies). A restart of the agent re-arms the idle
clock too, so a probe never crashes it: anything unexpected becomes a failed probe.

Each decision is one line on stdout (the journal): `active: jupyter kernel busy (1 of 2)`,
`idle 23/60 min: no signal`, `warning: idle 60 min, powering off in 5 min`, `cancelled: active: ssh
terminal pts/0; the idle clock restarts`, `poweroff: idle 65 min`. A line is written when the state or the
set of active signals (or failing probes) changes, otherwise at most every log_every_minutes. A probe that
fails (Jupyter down) counts as no signal from that source and is named on the line; Jupyter and nvidia-smi
are then asked again with exponential backoff (up to 10 min). The last decision, with the agent's RSS and
CPU time, is also kept in status_file (JSON, on /run) for `gpubox-hold`.

Spot (spot=true): a thread asks the instance metadata service every spot_poll_seconds with IMDSv2 (a PUT
for a token, refreshed before it expires, then GETs of spot/instance-action and
events/recommendations/rebalance; 404 = no notice). Failures back off exponentially up to 60 s. On each
kind of notice, once: a log line, a `wall` warning, then every executable in interrupt_dir (sorted; not
group- or world-writable; owned by root or this agent's user; dotfiles and package-manager leftovers
skipped), one after the other, each killed after interrupt_timeout seconds, each result logged. Hooks get
GPUBOX_NOTICE_KIND (instance-action or rebalance), GPUBOX_NOTICE_ACTION (stop, terminate, hibernate),
GPUBOX_NOTICE_TIME and GPUBOX_NOTICE_JSON. The interruption notice gives about two minutes: keep hooks short.

Settings come from /etc/gpubox/autostop.conf (KEY=VALUE lines with # comments, or one JSON object), then
from flags (--idle-minutes 30). `check-config` lists every key with its value, in a form it reads back.
The file holds no secret and should be readable by all: gpubox-hold reads hold_dir and max_hold_hours.

Layout (this package; the role installs it as one zipapp, built on the controller by the lookup gpubox.gpubox.zipapp):
  __main__.py   the entry point (python3 -m gpubox_autostop, and the zipapp's)
  cli.py        the command line, and gpubox-hold by argv[0]
  settings.py   defaults, the config file, flags, the checks; limits.py the numbers' ranges (a link to the
                collection's plugins/module_utils/autostop_limits.py: the controller checks the same ranges)
  decisions.py  Reading, Decision and Autostop: the idle/warning/power-off decision (pure, time comes in)
  probes.py     jupyter, gpu, ssh, cpu, hold and job probes, and Probes with backoff
  hold.py       the hold files (read and write) and the gpubox-hold command
  spot.py       IMDSv2 and the spot notice watcher; hooks.py the interrupt hooks it runs
  wiring.py     run_agent: the loop, the status file, wall, the power-off command
  util.py       formatting, ISO times, safe small reads, HTTP, commands, backoff
"""
