import DroverCore
import Foundation
import Testing
@testable import DroverSSH

/// The wrapped exec request runs the same script under every login shell sshd may use, and
/// what their start-up files print never reaches the command's output.
@Suite("Remote command wrapping")
struct RemoteCommandTests {
    /// A script with every character the shells treat differently inside quotes.
    static let script = #"""
        printf '%s|' "it's" 'a "b"' '100%' '!x' 'back\slash' 'ünï' "$HOME" '$NOPE' '`x`' '#h' '~'
        echo
        for i in 1 2; do echo "line $i"; done
        printf 'to stderr\n' >&2
        printf 'no newline at end'
        exit 7
        """#
    static let expectedOut = "it's|a \"b\"|100%|!x|back\\slash|ünï|HOMEDIR|$NOPE|`x`|#h|~|\nline 1\nline 2\nno newline at end"

    static let shells = ["/bin/sh", "/bin/dash", "/bin/bash", "/usr/bin/zsh", "/usr/bin/tcsh", "/usr/bin/fish"]

    @Test(arguments: shells)
    func runsTheSameUnderEveryLoginShell(shell: String) throws {
        guard LocalFile.exists(shell) else {
            // scripts/setup installs zsh, tcsh and fish; a machine without one reports it here.
            Issue.record("\(shell) is not installed (scripts/setup installs zsh, tcsh and fish)")
            return
        }
        let home = try Self.chattyHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let env = ["HOME=\(home)", "PATH=/usr/bin:/bin", "BASH_ENV=\(home)/.bashrc", "ZDOTDIR=\(home)", "LANG=C.UTF-8"]
        // sshd runs the request as `$SHELL -c REQUEST`.
        let r = try ChildProcess.run([shell, "-c", RemoteCommand.wrap(Self.script)], environment: env, timeout: 30)
        var out = PreambleFilter(), err = PreambleFilter()
        let stdout = out.feed(r.stdout), stderr = err.feed(r.stderr)
        #expect(out.found && err.found, "\(shell): no marker; stdout \(r.stdoutText) stderr \(r.stderrText)")
        #expect(String(decoding: stdout, as: UTF8.self) == Self.expectedOut.replacingOccurrences(of: "HOMEDIR", with: home), "\(shell)")
        #expect(String(decoding: stderr, as: UTF8.self) == "to stderr\n", "\(shell)")
        #expect(r.status == 7, "\(shell): exit status \(r.status)")
        if shell != "/bin/sh" && shell != "/bin/dash" {
            // The start-up files did print (so the filter had something to drop).
            #expect(String(decoding: out.preamble + err.preamble, as: UTF8.self).contains("Welcome"), "\(shell): rc files did not run")
        }
    }

    @Test func markerSplitAcrossReadsIsFound() {
        var f = PreambleFilter()
        let data = Array("banner\nmodule load gcc\n".utf8) + RemoteCommand.marker + Array("job output\n".utf8)
        var got: [UInt8] = []
        for byte in data { got += f.feed([byte]) }
        #expect(f.found)
        #expect(String(decoding: got, as: UTF8.self) == "job output\n")
        #expect(String(decoding: f.preamble, as: UTF8.self) == "banner\nmodule load gcc\n")
    }

    @Test func outputWithoutMarkerIsKeptForTheError() {
        var f = PreambleFilter()
        #expect(f.feed(Array("fish: Unknown command\n".utf8)).isEmpty)
        #expect(!f.found)
        #expect(String(decoding: f.unframed, as: UTF8.self) == "fish: Unknown command\n")
    }

    @Test func encodingUsesOnlyCharactersEveryShellQuotesAlike() {
        let wrapped = RemoteCommand.wrap("echo 'x' \"y\" 50% !z\n\\")
        let payload = wrapped.split(separator: "'").last.map(String.init) ?? ""
        for bad in ["'", "!", "%", "\n"] { #expect(!payload.contains(bad), "payload contains \(bad)") }
        #expect(!payload.contains("\\\\"))
    }

    /// A home whose start-up files print to stdout and stderr, for every shell.
    static func chattyHome() throws -> String {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("drover-rc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home + "/.config/fish", withIntermediateDirectories: true)
        let sh = "echo 'Welcome to the lab'; echo 'module load gcc/12' >&2\n"
        for file in [".bashrc", ".zshenv", ".profile"] { try sh.write(toFile: home + "/" + file, atomically: true, encoding: .utf8) }
        try "echo 'Welcome (tcsh)'; echo 'module load gcc/12' > /dev/stderr\n".write(toFile: home + "/.tcshrc", atomically: true, encoding: .utf8)
        try "echo 'Welcome (fish)'; echo 'module load gcc/12' >&2\n".write(toFile: home + "/.config/fish/config.fish", atomically: true, encoding: .utf8)
        return home
    }
}
