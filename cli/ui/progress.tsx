/** ink components for live progress: one bar per task plus a status line. */
import { Box, Text } from "ink";

export interface ProgressTask {
  label: string;
  current: number;
  total?: number;
  detail?: string;
  done?: boolean;
}

const WIDTH = 28;

export function bar(current: number, total: number, width = WIDTH): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, current / total)) : 0;
  const full = Math.round(frac * width);
  return "█".repeat(full) + "░".repeat(width - full);
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export function ProgressView({ tasks, tick, logs }: { tasks: ProgressTask[]; tick: number; logs: string[] }) {
  return (
    <Box flexDirection="column">
      {logs.map((line, i) => (
        <Text key={`log-${i}`} dimColor>
          {line}
        </Text>
      ))}
      {tasks.map((t) => (
        <Box key={t.label}>
          <Text color={t.done ? "green" : "cyan"}>{t.done ? "✔" : SPINNER[tick % SPINNER.length]} </Text>
          <Text>{t.label.padEnd(14)} </Text>
          {t.total !== undefined ? (
            <Text>
              {bar(t.current, t.total)} {String(t.current).padStart(String(t.total).length)}/{t.total}
            </Text>
          ) : (
            <Text>{t.current > 0 ? String(t.current) : ""}</Text>
          )}
          {t.detail ? <Text dimColor> {t.detail}</Text> : null}
        </Box>
      ))}
    </Box>
  );
}
