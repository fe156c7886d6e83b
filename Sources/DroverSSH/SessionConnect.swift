import CLibSSH2
import DroverCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SessionLoop {
    /// Connects, verifies the host key and authenticates, within `target.connectTimeout`.
    ///
    /// Runs on the connection's own thread, in libssh2's blocking mode bounded by the
    /// session timeout; the event loop switches to non-blocking afterwards.
    func connect() throws(SSHError) {
        let deadline = ContinuousClock.now + .milliseconds(Int(target.connectTimeout * 1000))
        if !target.unsupportedConfig.isEmpty {
            throw error(.unsupportedConfig, "read ~/.ssh/config", target.unsupportedConfig.joined(separator: "; ")
                + ". Remove the option for this host, or set the inventory's fields (`address`, `port`, `jump`, …) instead.")
        }
        // A tunnelled connection was handed its socket (one end of a socketpair) already.
        if socketFD < 0 { socketFD = try openSocket(deadline: deadline) }
        guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
            throw error(.protocolError, "start SSH session", "libssh2 could not allocate a session")
        }
        self.session = session
        libssh2_session_set_blocking(session, 1)
        setSessionTimeout(deadline)
        preferKnownHostKeyTypes(session)
        let rc = libssh2_session_handshake(session, socketFD)
        if rc != 0 {
            if rc == LIBSSH2_ERROR_TIMEOUT || ContinuousClock.now >= deadline {
                throw error(.timedOut, "SSH handshake with \(target.endpoint)", "no SSH greeting within \(formatSeconds(target.connectTimeout))")
            }
            throw lastError("SSH handshake with \(target.endpoint)", fallback: .handshakeFailed)
        }
        try verifyHostKey(session)
        setSessionTimeout(deadline)
        try authenticate(session, deadline: deadline)
    }

    private func setSessionTimeout(_ deadline: ContinuousClock.Instant) {
        guard let session else { return }
        let remaining = deadline - ContinuousClock.now
        let ms = max(1, remaining.wholeMilliseconds)
        libssh2_session_set_timeout(session, ms)
    }

    // MARK: TCP

    /// Resolves the address and connects a TCP socket before the deadline.
    private func openSocket(deadline: ContinuousClock.Instant) throws(SSHError) -> Int32 {
        let operation = "connect to \(target.endpoint)"
        let fd: Int32
        do {
            fd = try tcpConnect(host: target.address, port: target.port, deadline: deadline)
        } catch {
            switch error {
            case .unresolved(let reason):
                throw self.error(.unreachable, operation, "cannot resolve \(target.address): \(reason); check `address` in the inventory")
            case .timedOut:
                throw self.error(.timedOut, operation, "no answer within \(formatSeconds(target.connectTimeout)) (connect_timeout); the host may be down or a firewall drops the connection")
            case .failed(errno: ECONNREFUSED):
                throw self.error(.connectionRefused, operation, "connection refused: is sshd running and listening on port \(target.port)?")
            case .failed(errno: ETIMEDOUT):
                throw self.error(.timedOut, operation, "the connection timed out")
            case .failed, .noAddress:
                throw self.error(.unreachable, operation, error == .noAddress ? "no usable address for \(target.address)" : error.reason)
            }
        }
        tune(fd)
        return fd
    }

    /// TCP_NODELAY for latency; TCP keepalive and (on Linux) TCP_USER_TIMEOUT so a
    /// silent peer is detected: SSH keepalives are unacknowledged data after a cut.
    private func tune(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
        #if os(Linux)
        var userTimeout = UInt32(options.keepaliveInterval * options.keepaliveCountMax * 1000)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &userTimeout, socklen_t(MemoryLayout<UInt32>.size))
        var idle = Int32(options.keepaliveInterval)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, socklen_t(MemoryLayout<Int32>.size))
        var interval = Int32(options.keepaliveInterval)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, socklen_t(MemoryLayout<Int32>.size))
        var count = Int32(options.keepaliveCountMax)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    // MARK: Host key

    /// Puts the key types known_hosts has for this host first, as OpenSSH does, so the
    /// server presents a key we can check.
    private func preferKnownHostKeyTypes(_ session: OpaquePointer) {
        let known = KnownHosts(file: target.knownHostsFile).keyTypes(for: target.knownHostsName)
        guard !known.isEmpty else { return }
        let all = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        var order: [String] = []
        for type in known {
            if type == "ssh-rsa" { order += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] } else { order.append(type) }
        }
        order += all.filter { !order.contains($0) }
        _ = libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, order.joined(separator: ","))
    }

    private func verifyHostKey(_ session: OpaquePointer) throws(SSHError) {
        let operation = "verify host key of \(target.endpoint)"
        var length = 0
        var type: Int32 = 0
        guard let raw = libssh2_session_hostkey(session, &length, &type), length > 0 else {
            throw lastError(operation, fallback: .handshakeFailed)
        }
        let key = [UInt8](UnsafeRawBufferPointer(start: raw, count: length))
        let keyType = KnownHosts.keyType(ofBlob: key) ?? "unknown"
        let display = KnownHosts.displayName(ofKeyType: keyType)
        let fingerprint = KnownHosts.fingerprint(key)
        let file = target.knownHostsFile
        let name = target.knownHostsName
        let quotedName = ShellQuote.quote(name)
        let known = KnownHosts(file: file)
        switch known.verify(hostName: name, keyType: keyType, key: key) {
        case .match:
            return
        case .revoked(let line):
            throw error(.revokedHostKey, operation, "the \(display) key \(fingerprint) offered by \(name) is marked @revoked in \(file):\(line); refusing to connect")
        case .mismatch(let recorded):
            let expected = recorded.map { "  expected: \(KnownHosts.displayName(ofKeyType: $0.keyType)) key \(KnownHosts.fingerprint($0.key)) (\(file):\($0.line))" }
            throw error(.hostKeyMismatch, operation, """
                REMOTE HOST IDENTIFICATION HAS CHANGED — refusing to connect.
                  offered:  \(display) key \(fingerprint)
                \(expected.joined(separator: "\n"))
                Someone could be intercepting the connection, or the host was reinstalled. If you know it was reinstalled, remove the old key with
                  ssh-keygen -R \(quotedName) -f \(ShellQuote.quote(file))
                and connect again to record the new one.
                """)
        case .otherTypesRecorded(let recorded):
            let types = Set(recorded.map { KnownHosts.displayName(ofKeyType: $0.keyType) }).sorted().joined(separator: ", ")
            throw error(.hostKeyMismatch, operation, """
                the host offered a \(display) key (\(fingerprint)) but \(file) records only \(types) keys for \(name) (line \(recorded[0].line)); refusing to connect.
                If the host's keys really changed, remove the old entries with `ssh-keygen -R \(quotedName) -f \(ShellQuote.quote(file))` and connect again.
                """)
        case .unknown:
            if target.acceptNewHostKeys {
                do {
                    try KnownHosts.record(hostName: name, keyType: keyType, key: key, in: file)
                } catch {
                    throw self.error(.localIO, "record host key in \(file)", error.description)
                }
                return
            }
            let portOption = target.port == 22 ? "" : "-p \(target.port) "
            var scan = "ssh-keyscan \(portOption)-t \(keyType) \(ShellQuote.quote(target.address))"
            if let hop = target.jump.last {
                // Behind a hop the host is out of this machine's reach: scan from the hop.
                let jumps = target.jump.dropLast().map { "\($0.user)@\($0.address):\($0.port)" }.joined(separator: ",")
                let login = "\(hop.user)@\(hop.address)" + (hop.port == 22 ? "" : " -p \(hop.port)")
                scan = "ssh \(jumps.isEmpty ? "" : "-J \(jumps) ")\(login) \(ShellQuote.quote(scan))"
            }
            throw error(.unknownHostKey, operation, """
                \(name) is not in \(file); it offered \(display) key \(fingerprint).
                Check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_\(display.lowercased())_key.pub), then trust it with
                  \(scan) >> \(ShellQuote.quote(file))
                or set "host_key_policy": "accept-new" for this host in the inventory.
                """)
        }
    }

    // MARK: Authentication

    private func authenticate(_ session: OpaquePointer, deadline: ContinuousClock.Instant) throws(SSHError) {
        let operation = "authenticate as \(target.user) on \(target.endpoint)"
        let user = target.user
        let ulen = UInt32(user.utf8.count)
        let methods = libssh2_userauth_list(session, user, ulen).map { String(cString: $0) }
        if libssh2_userauth_authenticated(session) != 0 { return }
        guard let methods else {
            throw timedOutOr(lastError(operation, fallback: .authenticationRefused), operation, deadline)
        }
        guard methods.split(separator: ",").contains("publickey") else {
            throw error(.authenticationRefused, operation, "the server accepts only \(methods); Drover authenticates with keys. Allow publickey in sshd_config and add your key to ~\(user)/.ssh/authorized_keys")
        }
        var tried: [String] = []
        var rsaRefused: [String] = []
        var othersTried = false

        if target.useAgent, LocalUser.environment("SSH_AUTH_SOCK") != nil, let agent = libssh2_agent_init(session) {
            defer {
                libssh2_agent_disconnect(agent)
                libssh2_agent_free(agent)
            }
            if libssh2_agent_connect(agent) == 0 && libssh2_agent_list_identities(agent) == 0 {
                var previous: UnsafeMutablePointer<libssh2_agent_publickey>?
                var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
                while libssh2_agent_get_identity(agent, &identity, previous) == 0, let id = identity {
                    previous = id
                    let blob = [UInt8](UnsafeBufferPointer(start: id.pointee.blob, count: Int(id.pointee.blob_len)))
                    let comment = id.pointee.comment.map { String(cString: $0) } ?? ""
                    let type = KnownHosts.keyType(ofBlob: blob) ?? "key"
                    let label = "ssh-agent \(KnownHosts.displayName(ofKeyType: type)) key \(comment.isEmpty ? KnownHosts.fingerprint(blob) : comment)"
                    tried.append(label)
                    if libssh2_agent_userauth(agent, user, id) == 0 { return }
                    if ContinuousClock.now >= deadline { throw timedOut(operation) }
                    if type == "ssh-rsa" { rsaRefused.append(label) } else { othersTried = true }
                }
            }
        }
        var skipped: [String] = []
        for path in target.identities {
            let info = KeyFileInfo(path: path)
            if info.encrypted {
                skipped.append("\(path) is protected by a passphrase: load it into ssh-agent with `ssh-add \(path)`")
                continue
            }
            tried.append(path)
            let rc = libssh2_userauth_publickey_fromfile_ex(session, user, ulen, nil, path, nil)
            if rc == 0 { return }
            if rc == LIBSSH2_ERROR_TIMEOUT || ContinuousClock.now >= deadline { throw timedOut(operation) }
            if rc == LIBSSH2_ERROR_FILE {
                skipped.append("\(path) could not be read as a private key by libssh2")
                tried.removeLast()
                continue
            }
            if info.isRSA { rsaRefused.append(path) } else { othersTried = true }
        }
        if !rsaRefused.isEmpty && !othersTried {
            throw error(.rsaSHA1Refused, operation, """
                the server refused the RSA key \(rsaRefused.joined(separator: ", ")). libssh2 1.10 signs RSA keys only with SHA-1 (ssh-rsa), which OpenSSH 8.8 and later reject.
                Use an ed25519 key instead: ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519, add the .pub line to ~\(user)/.ssh/authorized_keys on the host, and set "identity" in the inventory.
                """)
        }
        var message: String
        if tried.isEmpty {
            message = "no key to offer: ssh-agent has none (or SSH_AUTH_SOCK is unset) and no key file was found. Create one with `ssh-keygen -t ed25519` and set \"identity\" in the inventory"
        } else {
            message = "the server refused every key offered (\(tried.joined(separator: ", "))). Add the public key to ~\(user)/.ssh/authorized_keys on the host, or set \"identity\" to a key it accepts"
        }
        if !rsaRefused.isEmpty { message += ". Note: RSA keys fail with libssh2 1.10 against OpenSSH ≥ 8.8 (SHA-1 signatures); use ed25519" }
        if !skipped.isEmpty { message += ". Skipped: " + skipped.joined(separator: "; ") }
        throw error(.authenticationRefused, operation, message)
    }

    private func timedOut(_ operation: String) -> SSHError {
        error(.timedOut, operation, "authentication did not finish within \(formatSeconds(target.connectTimeout)) (connect_timeout)")
    }

    private func timedOutOr(_ e: SSHError, _ operation: String, _ deadline: ContinuousClock.Instant) -> SSHError {
        (e.kind == .timedOut || ContinuousClock.now >= deadline) ? timedOut(operation) : e
    }
}

/// "3 s", "0.5 s".
func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
}
