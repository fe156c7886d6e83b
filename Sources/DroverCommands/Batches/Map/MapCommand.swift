import ArgumentParser
import DroverCoordinator
import DroverCore
import DroverInventory
import Foundation

/// `drover map`: GNU parallel's command line, run on the inventory's hosts.
struct MapCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map",
        abstract: "Run a command once per input, as GNU parallel does: drover map 'cmd {}' ::: a b c.",
        usage: "drover map [--state DIR] [--inventory FILE] [options] command [args] (::: values | :::: files)…",
        discussion: MapHelp.text
    )

    @OptionGroup var stateOptions: StateOptions
    @OptionGroup var inventoryOptions: InventoryOptions

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("parallel's options, the command (replacement strings allowed), then ::: values… or :::: files…", valueName: "command"))
    var words: [String] = []

    func run() async throws {
        let prepared: MapRun
        do {
            guard let p = try prepare() else { return }
            prepared = p
        } catch let e as ExitCode where e.rawValue == 0 {
            throw e
        } catch is ExitCode {
            // parallel's status for its own errors (bad option, unreadable input, no such host);
            // the message is out already.
            throw ExitCode(255)
        } catch {
            Terminal.error("\(error)")
            throw ExitCode(255)
        }
        let status: Int32
        do { status = try await prepared.run() } catch let e as ExitCode { throw e } catch {
            Terminal.error("\(error)")
            throw ExitCode(255)
        }
        throw ExitCode(status)
    }

    /// Reads the options and inputs and builds the batch; nil after `--help` or `--dry-run`.
    private func prepare() throws -> MapRun? {
        var words = self.words
        if words.first == "--" { words.removeFirst() }
        let options: MapOptions
        let split: (template: [String], sources: [MapArguments.Source], linked: [Bool])
        do {
            let parsed: (MapOptions, rest: [String])
            do { parsed = try MapOptions.parse(words) } catch {
                Terminal.error(error.message)
                throw ExitCode(2)
            }
            options = parsed.0
            if options.help || parsed.rest.isEmpty && words.isEmpty {
                print(Self.helpMessage())
                return nil
            }
            // --retry-failed takes its commands from the joblog: it needs none here.
            split = options.retryFailed && parsed.rest.isEmpty ? (["true"], [.values([""])], [false]) : try MapArguments.splitLinking(parsed.rest)
        } catch let error as MapTemplateError {
            Terminal.error("\(error.message); e.g. drover map 'gzip -9 {}' ::: a.txt b.txt (drover help map)")
            throw ExitCode(2)
        }
        let inventory = try inventoryOptions.load()
        let builder = try MapBuilder(options: options, inventory: inventory, state: stateOptions)
        let build = try builder.batch(template: split.template, sources: split.sources, linked: split.linked)
        let submission = try BatchSubmission(build.spec, options: builder.batchOptions, inventory: inventory)
        if options.dryRun {
            // parallel's --dry-run: the command lines, one per job, nothing run.
            for job in build.spec.jobs { print(job.request.commandLine) }
            return nil
        }
        return MapRun(submission: submission, build: build, options: options, state: stateOptions)
    }
}
