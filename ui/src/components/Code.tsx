import hljs from "highlight.js/lib/core";
import python from "highlight.js/lib/languages/python";
import { useMemo } from "preact/hooks";

hljs.registerLanguage("python", python);

// A scrolling block is focusable, so keyboard users can scroll it; a named `group` says what it holds.

/** Model-written Python, highlighted. highlight.js escapes the text, so the markup is safe. */
export function Code({ code, label }: { code: string; label: string }) {
  const html = useMemo(() => hljs.highlight(code, { language: "python", ignoreIllegals: true }).value, [code]);
  return (
    <pre class="code" tabIndex={0} role="group" aria-label={label}>
      <code class="hljs language-python" dangerouslySetInnerHTML={{ __html: html }} />
    </pre>
  );
}

/** Plain text the user may need to scroll through: cell output, prompts, answers. */
export function Text({ text, label, tone }: { text: string; label: string; tone?: "error" }) {
  return (
    <pre class={tone === "error" ? "text error-text" : "text"} tabIndex={0} role="group" aria-label={label}>
      {text}
    </pre>
  );
}
