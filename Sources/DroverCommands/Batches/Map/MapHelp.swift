/// `drover help map`: GNU parallel's command line as Drover runs it.
enum MapHelp {
    static let text = """
        drover map reads GNU parallel's command line and runs the jobs on the inventory's hosts (hosts.json). Each job's stdout goes to stdout and its stderr to stderr, together per job, when the job ends; nothing else goes to stdout.

        The command is a /bin/sh command line on the host; inserted values are quoted so each stays one word whatever it holds ('sleep 1; echo {}' works as in parallel). -q/--quote runs the words as an argv, without a shell.

        Inputs: ::: VALUES…, :::: FILE…, -a/--arg-file FILE, or stdin, one per line (-0/--null: NUL-separated; -d D: D-separated). Several sources make every combination (the first varying slowest); --link or :::+ pairs them instead. --colsep REGEX splits a line into {1} {2} …; --header : names the columns from the first line ({name}); -N/--max-args N gives each job N values (-N0: none, one job per input).

        Replacement strings: {} {.} {/} {//} {/.} {#} (job number) {%} (slot on its host), {N} {N.} … of source N. With none, the values are appended.

        Options as in parallel (docs/parallel.md has them all):
          -k, --keep-order
              print the jobs' output in input order
          --tag, --tagstring STR
              prefix each output line with the values (or STR) and a tab
          --group (the default)
              a job's output together, when it ends
          --line-buffer, --lb
              each job's lines as they come (whole lines; with -k as --group)
          -j, --jobs N|+N|-N|N%
              jobs per host, from the host's slots (hosts.json `slots`)
          -S, --sshlogin [N/]HOST[,HOST…]
              run only on these inventory hosts; `:` is the one on this machine (N/ is ignored: the host's slots count)
          --timeout SECS|N%, --retries N
              kill a job after SECS, or once it runs longer than N% of the median runtime of the jobs that
              succeeded (applied while the map follows its jobs: not with --detach); run a failing job up to N times
          --halt never|soon,fail=N|now,fail=N (also success=, done=, N%)
              stop early, as parallel does
          --joblog FILE, --resume, --resume-failed, --retry-failed
              parallel's joblog, and a resume from it
          --bar, --eta, --progress
              a progress display, on stderr
          --dry-run
              print the command lines, run nothing
          --transferfile FILE, --return FILE, --cleanup
              upload FILE into each job's folder; copy FILE back here

        Every invocation runs its jobs. --resume (without --joblog) skips jobs of the same map (same --name, else the same command) that ran before; --resume-failed re-runs only those that did not succeed.

        Exit status: 0 when all succeeded, else the number of failed jobs (101 for more than 100); under --halt …,fail=1 the failing job's status; 255 for an error of drover itself (a bad option: parallel's options Drover lacks are refused by name).

        Drover's own: --name NAME (the batch's name, for drover report), --on key=value, --host NAME, --slots N, --priority N, --mem SIZE, --env K=V, --cwd DIR, --lost-retries N, --results DIR (each job's stdout, stderr, returned files and report.json under DIR/NAME/; default STATE/map-results; --results-layout parallel: parallel's DIR/1/VALUE/stdout, stderr, seq instead), --progress auto|bar|lines|json|none, --detach, --on-interrupt ask|cancel|leave. Jobs of a host that dies run again elsewhere and print once. docs/parallel.md compares every option with parallel's.

        Examples:
          drover map 'gzip -9 < {} > {}.gz' :::: files.txt
          drover map -k --tag 'sage run.sage {1} {2}' ::: 10 20 ::: a b
          find data -name '*.csv' | drover map --joblog clean.log python3 clean.py {}
          drover map --joblog clean.log --resume-failed python3 clean.py {} :::: todo
        """
}
