import ArgumentParser

/// A command whose trailing words are passed through to a job untouched (`drover map`): the
/// argument parser hands it `--help` too. The words' leading options (before the job's command,
/// `--`, `:::` or `::::`) are Drover's, so a `--help` or `-h` among them asks for help.
protocol PassesWordsThrough {
    /// The words as captured, `--help` included.
    var passedWords: [String] { get }
}

extension PassesWordsThrough {
    /// Whether `--help` or `-h` comes among the leading options of the words.
    var asksForHelp: Bool {
        for word in passedWords {
            guard word.hasPrefix("-"), word != "--", !word.hasPrefix(":::") else { return false }
            if word == "--help" || word == "-h" { return true }
        }
        return false
    }
}

extension MapCommand: PassesWordsThrough {
    var passedWords: [String] { words }
}
