import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover map`: one job per input, GNU parallel style.
struct MapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Run a command once per input, as GNU parallel does: drover map 'cmd {}' ::: a b c.",
        discussion: """
            Inputs come from ::: VALUES…, from :::: FILE (one per line), or from stdin (one per line). Several ::: or :::: make every combination (the first varying slowest), used as {1}, {2}, ….

            Replacement strings, as in GNU parallel: {} the input, {.} without its extension, {/} its basename, {//} its dirname, {/.} basename without extension, {#} the job number, {%} the slot number on its host. With none in the command, the input is appended.

            The command runs without a shell: each input is one argument, byte for byte, whatever it contains. With --shell it is a /bin/sh line and inputs are inserted quoted.

            A map is a batch (named by --name, else after the command): it has a progress display, a report under results/<batch>/, and running the same map again re-runs only what did not succeed.

            Examples:
              drover map gp -q {} ::: chunk-*.gp
              drover map --shell 'gzip -9 < {} > {}.gz' :::: files.txt
              find data -name '*.csv' | drover map --name clean python3 clean.py {}
              drover map --dry-run sage run.sage {1} {2} ::: 10 20 ::: a b
            """
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Flag(name: .long, help: "Submit and return (print the batch name) instead of following the batch.")
    var detach = false

    @Option(name: .long, help: ArgumentHelp("What Ctrl-C does: ask, cancel (the unfinished jobs) or leave (them running).", valueName: "choice"))
    var onInterrupt: InterruptChoice?

    @OptionGroup(title: "Batch options") var batch: BatchOptions
    @OptionGroup var job: JobOptions

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command (replacement strings allowed), then ::: inputs… or :::: files…", valueName: "command"))
    var words: [String] = []

    func run() async throws {
        let inventory = try inventoryOptions.load()
        let spec = try build(inventory: inventory)
        try await BatchSubmission(spec, options: batch, inventory: inventory).run(state: stateOptions, detach: detach, onInterrupt: onInterrupt)
    }

    /// The batch: one job per combination of inputs.
    func build(inventory: Inventory) throws -> BatchSpec {
        var words = self.words
        if words.first == "--" { words.removeFirst() }
        let split: (template: [String], sources: [MapArguments.Source])
        let template: MapTemplate
        do {
            split = try MapArguments.split(words)
            template = try MapTemplate(split.template, shell: job.shell)
        } catch {
            Terminal.error("\(error.message); e.g. drover map 'gp -q {}' ::: a.gp b.gp")
            throw ExitCode(2)
        }
        var sources: [[String]] = []
        for s in split.sources {
            switch s {
            case .values(let v): sources.append(v)
            case .file(let path):
                guard let bytes = try? LocalFile.read(path) else {
                    Terminal.error(":::: \(path): cannot read the file")
                    throw ExitCode(2)
                }
                sources.append(MapInputs.lines(String(decoding: bytes, as: UTF8.self)))
            }
        }
        if sources.isEmpty {
            if isatty(0) == 1 {
                Terminal.error("no inputs: give them after :::, in a file after ::::, or on stdin (one per line)")
                throw ExitCode(2)
            }
            let data = FileHandle.standardInput.readDataToEndOfFile()
            sources.append(MapInputs.lines(String(decoding: data, as: UTF8.self)))
        }
        let combos = MapInputs.product(sources)
        guard !combos.isEmpty, !(combos.count == 1 && combos[0].isEmpty) else {
            Terminal.error("no inputs: the input list is empty")
            throw ExitCode(2)
        }
        var options = job
        options.shell = false
        options.name = nil
        var base = try options.request(inventory: inventory, command: ["true"])
        base.argv = nil
        if template.usesSlot { base.fillsSlot = true }
        var jobs: [BatchJob] = []
        for (i, values) in combos.enumerated() {
            var r = base
            let expanded = template.expand(values, seq: i + 1)
            if template.shell { r.shell = expanded.first ?? "" } else { r.argv = expanded }
            jobs.append(BatchJob(id: String(i + 1), request: r, path: "input \(i + 1)"))
        }
        let name = job.name ?? "map-" + hexString(SHA256.hash(Array((template.words.joined(separator: "\u{0}") + (template.shell ? "\u{1}" : "")).utf8))).prefix(8)
        guard BatchNames.isValid(name) else {
            Terminal.error("--name \(name): a batch name may use only \(BatchNames.rule)")
            throw ExitCode(2)
        }
        return BatchSpec(name: name, jobs: jobs, file: "drover map")
    }
}
