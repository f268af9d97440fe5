import { type FormEvent, useState } from "react";

import { errorMessage } from "./api";
import { checkFields, type FieldSpec } from "./fields";
import { type FieldProblems, hasProblems } from "./validation";

/** What came of an action, to show above its form or buttons. */
export interface Outcome {
  tone: "success" | "error";
  text: string;
}

/** An API call behind a button: busy while it runs; what it throws is the
 * outcome as an error, the text it returns (if any) as a success. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  async function run(action: () => Promise<string | void>) {
    setBusy(true);
    setOutcome(null);
    try {
      const text = await action();
      if (text) setOutcome({ tone: "success", text });
    } catch (error) {
      setOutcome({ tone: "error", text: errorMessage(error) });
    } finally {
      setBusy(false);
    }
  }

  return { busy, outcome, setOutcome, run };
}

/** What a `TextField` needs of one field of a form. */
export interface FieldProps {
  name: string;
  label: string;
  type?: string;
  autoComplete?: string;
  required?: boolean;
  hint?: string;
  value: string;
  onChange: (value: string) => void;
  error?: string;
}

/** The state of a form made of `fields` (in the order they are shown),
 * starting from `initial` (empty where not given). */
export function useForm<K extends string>(fields: Record<K, FieldSpec>, initial: Partial<Record<K, string>> = {}) {
  const names = Object.keys(fields) as K[];
  const start = () => Object.fromEntries(names.map((name) => [name, initial[name] ?? ""])) as Record<K, string>;
  const [values, setValues] = useState(start);
  const [problems, setProblems] = useState<FieldProblems<K>>({});
  const action = useAction();

  const set = (name: K, value: string) => setValues((previous) => ({ ...previous, [name]: value }));

  return {
    ...action,
    values,
    set,
    /** Back to the values the form started with. */
    reset: () => setValues(start()),
    /** Each field's props, in order. */
    fields: names.map(
      (name): FieldProps => ({
        name,
        label: fields[name].label,
        type: fields[name].type,
        autoComplete: fields[name].autoComplete,
        required: fields[name].required,
        hint: fields[name].hint,
        value: values[name],
        onChange: (value) => set(name, value),
        error: problems[name],
      }),
    ),
    /** The form's submit handler: every field is checked, and only when
     * none has a problem is `send` run, as `useAction` runs it. */
    onSubmit: (send: (values: Record<K, string>) => Promise<string | void>) => (event: FormEvent) => {
      event.preventDefault();
      const found = checkFields(fields, values);
      setProblems(found);
      action.setOutcome(null);
      if (hasProblems(found)) return;
      void action.run(() => send(values));
    },
  };
}
