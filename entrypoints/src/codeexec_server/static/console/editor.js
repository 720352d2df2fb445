// The code editor: one CodeMirror 5 view (vendored, a global script) over one document per
// file, file tabs (the API's `files`; the first tab is the entry point), language-aware
// indentation (Ctrl/Cmd+Enter is the page's), and Escape then Tab to leave the editor by keyboard.

import { indentFor, modeFor } from "./languages.js";

const FILE_NAME = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

export class FileEditor {
  constructor(root, tabList) {
    const CodeMirror = window.CodeMirror;
    this.Doc = CodeMirror.Doc;
    this.tabList = tabList;
    this.files = [];
    this.active = 0;
    let leaving = false; // Escape pressed: the next Tab moves the focus instead of indenting
    this.cm = CodeMirror(root, {
      lineNumbers: true,
      matchBrackets: true,
      styleActiveLine: true,
      indentUnit: 4,
      screenReaderLabel: "Code editor",
      extraKeys: {
        Tab: (cm) => {
          if (cm.somethingSelected()) cm.indentSelection("add");
          else cm.execCommand(cm.getOption("indentWithTabs") ? "insertTab" : "insertSoftTab");
        },
        "Shift-Tab": (cm) => cm.indentSelection("subtract"),
      },
    });
    this.cm.on("keydown", (_, event) => {
      if (event.key === "Tab" && leaving) event.codemirrorIgnore = true; // the browser moves focus
      if (event.key !== "Shift") leaving = event.key === "Escape";
    });
    this.cm.on("blur", () => { leaving = false; });
    this.cm.getWrapperElement().CodeMirror = this.cm; // for tests and the screenshot script
    tabList.addEventListener("keydown", (event) => this._arrowKeys(event));
  }

  setIndent(languageName) {
    const { unit, tabs } = indentFor(languageName);
    this.cm.setOption("indentUnit", unit);
    this.cm.setOption("tabSize", unit);
    this.cm.setOption("indentWithTabs", Boolean(tabs));
  }

  /** Replaces every file: [{name, content}], the first being the entry point. */
  setFiles(files) {
    this.files = files.map((f) => ({ name: f.name, doc: new this.Doc(f.content, modeFor(f.name)) }));
    this.select(0);
  }

  getFiles() {
    return this.files.map((f) => ({ name: f.name, content: f.doc.getValue() }));
  }

  get value() {
    return this.files[this.active].doc.getValue();
  }

  set value(text) {
    this.files[this.active].doc.setValue(text);
  }

  /** Renames the entry file (a language change gives it that language's extension). */
  renameEntry(name) {
    const entry = this.files[0];
    if (entry.name === name) return;
    entry.name = name;
    entry.doc = new this.Doc(entry.doc.getValue(), modeFor(name));
    this.select(this.active);
  }

  /** Adds a file; returns an error message naming the problem, or "" when added. */
  addFile(name) {
    name = name.trim();
    if (!FILE_NAME.test(name) || name.split("/").some((p) => p === "." || p === "..")) {
      return "file name: letters, digits, '.', '_', '-' and '/' only, no '.' or '..' parts";
    }
    if (this.files.some((f) => f.name === name)) return `file name: ${name} already exists`;
    if (this.files.length >= 64) return "files: at most 64";
    this.files.push({ name, doc: new this.Doc("", modeFor(name)) });
    this.select(this.files.length - 1);
    this.cm.focus();
    return "";
  }

  removeFile(index) {
    if (index === 0) return; // the entry point stays
    this.files.splice(index, 1);
    this.select(Math.min(this.active, this.files.length - 1), true);
  }

  select(index, focusTab = false) {
    this.active = index;
    this.cm.swapDoc(this.files[index].doc);
    this._renderTabs();
    if (focusTab) this.tabList.querySelectorAll("[role=tab]")[index].focus();
  }

  focus() {
    this.cm.focus();
  }

  _renderTabs() {
    this.tabList.textContent = "";
    this.files.forEach((file, i) => {
      const tab = document.createElement("div");
      tab.className = "file-tab";
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "tab");
      button.setAttribute("aria-selected", String(i === this.active));
      button.setAttribute("aria-controls", "editor");
      button.tabIndex = i === this.active ? 0 : -1;
      button.textContent = file.name;
      button.title = i === 0 ? "entry point" : file.name;
      button.addEventListener("click", () => this.select(i));
      tab.appendChild(button);
      if (i > 0) {
        const close = document.createElement("button");
        close.type = "button";
        close.className = "close";
        close.textContent = "×";
        close.setAttribute("aria-label", `Remove file ${file.name}`);
        close.addEventListener("click", () => this.removeFile(i));
        tab.appendChild(close);
      }
      this.tabList.appendChild(tab);
    });
  }

  _arrowKeys(event) {
    if (event.target.getAttribute("role") !== "tab") return;
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) {
      event.preventDefault();
      this.select((this.active + step + this.files.length) % this.files.length, true);
    } else if (event.key === "Delete" && this.active > 0) {
      this.removeFile(this.active);
    }
  }
}
