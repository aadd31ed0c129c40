/**
 * Command-line flags of the scripts that validate theirs with zod (build-model, bench-model): one way to answer
 * --help, to read a positive integer, and to report bad flags (every problem, one per line, each naming its flag).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";

/** A flag whose value must be a positive integer, as a number. */
export const positiveIntFlag = (flag: string) =>
  z
    .string()
    .regex(/^\d+$/, `${flag}: expected a positive integer`)
    .transform(Number)
    .refine((n) => Number.isSafeInteger(n) && n > 0, `${flag}: expected a positive integer`);

/**
 * Reads `args` (default: this process's) with `options` plus --help, strictly (an unknown flag throws); --help
 * writes `help` to stdout and exits 0; otherwise the values go through `schema` once.
 */
export function parseCli<Schema extends z.ZodType>(
  options: NonNullable<ParseArgsConfig["options"]>,
  schema: Schema,
  help: string,
  args?: string[],
): z.output<Schema> {
  const { values } = parseArgs({ args, strict: true, options: { ...options, help: { type: "boolean" } } });
  if (values.help) {
    process.stdout.write(help);
    process.exit(0);
  }
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join("\n"));
  return parsed.data;
}
