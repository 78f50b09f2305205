import { useEffect, useRef, useState } from "preact/hooks";
import { setKeyPrompt } from "../api";

/** Asks for the function key when the API answers 401, as it does in Azure without one. */
export function KeyDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const answer = useRef<((key: string | null) => void) | null>(null);
  const [reason, setReason] = useState("");
  const [key, setKey] = useState("");

  useEffect(() => {
    setKeyPrompt(
      (why) =>
        new Promise((resolve) => {
          answer.current = resolve;
          setReason(why);
          setKey("");
          if (dialog.current) {
            dialog.current.returnValue = "";
            dialog.current.showModal();
          }
        }),
    );
    return () => setKeyPrompt(null);
  }, []);

  const finish = (value: string | null) => {
    answer.current?.(value);
    answer.current = null;
  };

  return (
    <dialog ref={dialog} class="key-dialog" aria-labelledby="key-title" onClose={() => finish(dialog.current?.returnValue === "ok" ? key.trim() || null : null)}>
      <form method="dialog">
        <h2 id="key-title">Function key</h2>
        <p>{reason}</p>
        <p class="hint">
          Find it in the Azure portal under the function app's <em>App keys</em>, or with{" "}
          <code>az functionapp keys list</code>. It is kept for this browser tab only.
        </p>
        <label class="field">
          <span>Key</span>
          <input type="password" name="function-key" autocomplete="off" required value={key} onInput={(e) => setKey((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <div class="actions">
          <button type="submit" value="ok" class="primary">
            Use this key
          </button>
          <button type="submit" value="cancel" formNoValidate>
            Cancel
          </button>
        </div>
      </form>
    </dialog>
  );
}
