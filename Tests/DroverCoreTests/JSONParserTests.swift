import Testing
@testable import DroverCore

@Suite("JSON parser")
struct JSONParserTests {
    @Test func parsesValuesWithPositions() throws {
        let text = """
            {
              "a": [1, -2.5e3, true, null],
              "b": "x\\u00e9\\ud83d\\ude00\\n"
            }
            """
        let root = try JSONParser.parse(text)
        let members = try #require(root.objectMembers)
        #expect(members.map(\.key) == ["a", "b"])
        #expect(members[0].keyPosition == SourcePosition(line: 2, column: 3))
        let array = try #require(members[0].value.arrayValue)
        #expect(array[0].intValue == 1)
        #expect(array[1].doubleValue == -2500)
        #expect(array[1].intValue == nil)
        #expect(array[2].boolValue == true)
        #expect(array[1].position == SourcePosition(line: 2, column: 12))
        #expect(members[1].value.stringValue == "xé😀\n")
    }

    @Test(arguments: [
        ("{\"a\": 1,}", 1, 9, "trailing comma"),
        ("{\n  \"a\": 1\n  \"b\": 2\n}", 3, 3, "expected ',' or '}'"),
        ("[1, 2", 1, 6, "end of file"),
        ("{\"a\": 'x'}", 1, 7, "double quotes"),
        ("{\"a\": \"x\\q\"}", 1, 9, "invalid escape"),
        ("{\"a\": 01}", 1, 7, "leading zeros"),
        ("{} x", 1, 4, "after the end"),
        ("{\"é\": tru}", 1, 7, "expected 'true'"),
    ])
    func reportsLineAndColumn(text: String, line: Int, column: Int, fragment: String) {
        do {
            _ = try JSONParser.parse(text)
            Issue.record("expected a syntax error for \(text)")
        } catch {
            #expect(error.position == SourcePosition(line: line, column: column), "\(error)")
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func rejectsDeepNesting() {
        let text = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
    }
}

@Suite("Config reader")
struct ConfigReaderTests {
    @Test func reportsUnknownKeysWithSuggestion() throws {
        let root = try JSONParser.parse("{\"slot\": 2, \"name\": \"x\", \"name\": \"y\"}")
        let d = ConfigDiagnostics(file: "f.json")
        var r = try #require(ObjectReader(root, path: "hosts[2]", diagnostics: d))
        _ = r.int("slots")
        _ = r.string("name")
        r.finish()
        let text = d.issues.map(\.description)
        #expect(text.contains("f.json:1:1: hosts[2].slot: unknown key; did you mean `slots`?") || text.contains { $0.contains("hosts[2].slot: unknown key; did you mean `slots`?") })
        #expect(text.contains { $0.contains("hosts[2].name: duplicate key") })
    }

    @Test func suggestionDistance() {
        #expect(Suggestion.distance("slot", "slots") == 1)
        #expect(Suggestion.distance("prot", "port") == 1)
        #expect(Suggestion.nearest(to: "adress", among: ["address", "port"]) == "address")
        #expect(Suggestion.nearest(to: "zzzzzz", among: ["address", "port"]) == nil)
    }
}
