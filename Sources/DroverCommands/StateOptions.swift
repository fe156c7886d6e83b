import ArgumentParser
import DroverCoordinator
import DroverInventory
import DroverCore

/// `--state`, shared by every command that reads or writes the coordinator's journal.
public struct StateOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The coordinator's state directory (journal, lock, log).",
        discussion: "Default: $DROVER_STATE, else $XDG_STATE_HOME/drover, else ~/.local/state/drover.",
        valueName: "dir"))
    public var state: String?

    public init() {}

    public var location: StateLocation { StateLocation(explicit: state) }

    /// Opens the journal, creating it when `create`; exits 1 with one clear line on failure.
    public func openJournal(create: Bool = true) throws -> Journal {
        let location = self.location
        if !create && !location.exists {
            Terminal.error("no journal in \(location.path): nothing was submitted with this state directory yet (see --state)")
            throw ExitCode(1)
        }
        do {
            return try Journal(location)
        } catch let error as UnsafeStateError {
            Terminal.error(error.description)
            throw ExitCode(1)
        } catch let error as JournalFormatError {
            Terminal.error(error.description)
            throw ExitCode(1)
        } catch {
            Terminal.error("cannot open the journal in \(location.path): \(error)")
            throw ExitCode(1)
        }
    }
}

extension Journal {
    /// The jobs named on a command line: ids, names, `BATCH/JOB`, or a batch name (all its
    /// current jobs); exits 2 naming the unknown ones.
    func resolveAll(_ references: [String]) throws -> [JobRecord] {
        var found: [JobRecord] = []
        var unknown: [String] = []
        for r in references {
            if Int(r) == nil, try batch(named: r) != nil {
                found += try batchJobs(r)
            } else if let j = try resolve(r) {
                found.append(j)
            } else {
                unknown.append(r)
            }
        }
        if !unknown.isEmpty {
            Terminal.error("no job or batch \(unknown.joined(separator: ", ")) in \(state.journalPath) (see `drover ps`)")
            throw ExitCode(2)
        }
        var seen: Set<Int> = []
        return found.filter { seen.insert($0.id).inserted }
    }
}
