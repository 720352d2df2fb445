// What the editor knows per language: CodeMirror mode by file extension, indentation
// style, and a starting template (keyed by the names GET /api/v1/languages returns).

const MODES = {
  ".py": "python",
  ".js": "javascript",
  ".mjs": "javascript",
  ".json": "application/json",
  ".sh": "shell",
  ".c": "text/x-csrc",
  ".h": "text/x-csrc",
  ".cpp": "text/x-c++src",
  ".cc": "text/x-c++src",
  ".cxx": "text/x-c++src",
  ".hpp": "text/x-c++src",
  ".java": "text/x-java",
  ".rs": "rust",
  ".go": "go",
  ".rb": "ruby",
  ".php": "application/x-httpd-php",
  ".pl": "perl",
  ".pm": "perl",
  ".lua": "lua",
};

/** Indentation each language's community writes (Go uses tabs, gofmt's choice). */
const INDENT = {
  javascript: { unit: 2 },
  ruby: { unit: 2 },
  bash: { unit: 2 },
  go: { unit: 4, tabs: true },
};

const TEMPLATES = {
  python: 'name = input() or "world"\nprint(f"Hello, {name}!")\n',
  javascript:
    'const name = require("fs").readFileSync(0, "utf8").trim() || "world";\n' +
    "console.log(`Hello, ${name}!`);\n",
  bash: 'read -r name\necho "Hello, ${name:-world}!"\n',
  c:
    "#include <stdio.h>\n\nint main(void) {\n    char name[64] = \"world\";\n" +
    '    scanf("%63s", name);\n    printf("Hello, %s!\\n", name);\n    return 0;\n}\n',
  cpp:
    "#include <iostream>\n#include <string>\n\nint main() {\n    std::string name;\n" +
    '    if (!(std::cin >> name)) name = "world";\n' +
    '    std::cout << "Hello, " << name << "!\\n";\n    return 0;\n}\n',
  java:
    "import java.util.Scanner;\n\npublic class Main {\n" +
    "    public static void main(String[] args) {\n        Scanner in = new Scanner(System.in);\n" +
    '        String name = in.hasNext() ? in.next() : "world";\n' +
    '        System.out.println("Hello, " + name + "!");\n    }\n}\n',
  rust:
    "use std::io::Read;\n\nfn main() {\n    let mut name = String::new();\n" +
    "    std::io::stdin().read_to_string(&mut name).unwrap();\n" +
    '    let name = if name.trim().is_empty() { "world" } else { name.trim() };\n' +
    '    println!("Hello, {}!", name);\n}\n',
  go:
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tname := "world"\n' +
    '\tfmt.Scan(&name)\n\tfmt.Printf("Hello, %s!\\n", name)\n}\n',
  ruby: 'name = $stdin.read.strip\nname = "world" if name.empty?\nputs "Hello, #{name}!"\n',
  php: '<?php\n$name = trim(stream_get_contents(STDIN)) ?: "world";\necho "Hello, $name!\\n";\n',
  perl: 'my $name = <STDIN> // "world";\nchomp $name;\nprint "Hello, $name!\\n";\n',
  lua: 'local name = io.read("l") or "world"\nprint("Hello, " .. name .. "!")\n',
  fake: "out Hello, world!\nsleep 0.2\nerr (a line on stderr)\nout done\n",
};

export function modeFor(fileName) {
  const dot = fileName.lastIndexOf(".");
  return dot < 0 ? null : MODES[fileName.slice(dot).toLowerCase()] || null;
}

export function indentFor(languageName) {
  return INDENT[languageName] || { unit: 4 };
}

export function templateFor(languageName) {
  return TEMPLATES[languageName] || "";
}

export function isTemplate(text) {
  return text.trim() === "" || Object.values(TEMPLATES).some((t) => t === text);
}

/** The entry file's name: "main" + the extension as the API names `source`, except Java,
 * whose runner starts the class named after the file (a public class Main needs Main.java). */
export function mainFileName(language) {
  if (!language) return "main";
  return (language.name === "java" ? "Main" : "main") + (language.extension || "");
}
